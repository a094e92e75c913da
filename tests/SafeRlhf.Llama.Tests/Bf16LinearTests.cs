using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests;

/// <summary>A linear layer with a frozen BF16 base weight and LoRA adapters: the native backend (which multiplies by
/// the BF16 weight directly) against the reference backend.</summary>
public sealed class Bf16LinearTests
{
    private static float[] Random(Rng rng, int count) => rng.UniformTensor(TestDevices.Reference, DType.F32, -1, 1, count).ToFloatArray();

    [Fact]
    public void LoraOnABf16BaseTrainsTheSameOnNativeAndReference()
    {
        int n = 6, inFeatures = 40, outFeatures = 24;
        var rng = new Rng(77);
        var xv = Random(rng, n * inFeatures);
        using var wf = Tensor.FromArray(TestDevices.Reference, Random(rng, outFeatures * inFeatures), outFeatures, inFeatures);
        using var wr = Tensor.Zeros(TestDevices.Reference, DType.BF16, outFeatures, inFeatures);
        TestDevices.Reference.Backend.Copy(wf, wr);
        using var wn = Tensor.FromBytes(TestDevices.Native, DType.BF16, wr.ToBytes(), outFeatures, inFeatures);

        var results = new List<(float[] Y, float[] Dx, float[] DA)>();
        foreach (var (device, w) in new[] { (TestDevices.Native, wn), (TestDevices.Reference, wr) })
        {
            using var scope = new TensorScope();
            var layer = new Linear(w, trainable: false);
            layer.AddLora(rank: 4, alpha: 8, new Rng(5));
            using (GradMode.NoGrad()) device.Backend.Fill(layer.Lora!.B, 0.25);  // non-zero B so dA is non-zero
            var x = Tensor.FromArray(device, xv, n, inFeatures);
            x.RequiresGrad = true;
            var y = layer.Forward(x);
            y.Square().Sum().Backward();
            results.Add((y.ToFloatArray(), x.Grad!.ToFloatArray(), layer.Lora.A.Grad!.ToFloatArray()));
        }
        for (int part = 0; part < 3; part++)
        {
            float[] Pick((float[] Y, float[] Dx, float[] DA) r) => part == 0 ? r.Y : part == 1 ? r.Dx : r.DA;
            var (native, reference) = (Pick(results[0]), Pick(results[1]));
            Assert.Contains(reference, v => v != 0);
            for (int i = 0; i < reference.Length; i++)
                Assert.True(Math.Abs(native[i] - reference[i]) <= 1e-4 + 1e-4 * Math.Abs(reference[i]),
                    $"{(part == 0 ? "y" : part == 1 ? "dx" : "dA")}[{i}]: native {native[i]}, reference {reference[i]}");
        }
    }
}
