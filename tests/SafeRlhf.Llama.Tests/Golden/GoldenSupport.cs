using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests.Golden;

/// <summary>Devices by name (for theory data) and helpers shared by the golden tests.</summary>
internal static class GoldenSupport
{
    public static string Stories260K => Assets.Require("models/stories260K.bin");
    public static string Tok512 => Assets.Require("models/tok512.bin");
    /// <summary>A short prompt of tok512 ids (BOS first) for forward passes of stories260K-sized models.</summary>
    public static readonly int[] Prompt = [1, 403, 407, 261, 378, 432, 383];

    public static Device DeviceNamed(string name) => name switch
    {
        "native" => TestDevices.Native,
        "ilgpu-cpu" => TestDevices.IlgpuCpu,
        "reference" => TestDevices.Reference,
        _ => throw new ArgumentException($"unknown test device {name}"),
    };

    /// <summary>Logits [T, vocab] (row-major) of one teacher-forced pass over <paramref name="ids"/>.</summary>
    public static double[] Logits(LlamaModel model, IReadOnlyList<int> ids)
    {
        using var scope = new TensorScope();
        using var noGrad = Tensors.Autograd.GradMode.NoGrad();
        var tokens = Tensor.FromArray(model.Device, ids.ToArray(), 1, ids.Count);
        var positions = Tensor.FromArray(model.Device, Enumerable.Range(0, ids.Count).ToArray(), 1, ids.Count);
        return model.Logits(model.Forward(tokens, positions)).ToDoubleArray();
    }

    /// <summary>‖actual − expected‖ / ‖expected‖.</summary>
    public static double RelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff) / Math.Sqrt(norm);
    }

    public static LlamaModel LoadStories(Device device, DType computeType = DType.F32) =>
        LlamaLoader.Load(Stories260K, device, new LlamaLoadOptions { ComputeType = computeType });
}
