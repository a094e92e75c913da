using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Nn.Tests;

/// <summary>AdamW against PyTorch's published algorithm (torch.optim.AdamW: decay θ ← θ − lr·λ·θ, then the
/// bias-corrected Adam step), written here as a naive double loop, over several steps with changing gradients; a 1-D
/// parameter gets no decay under the default filter. Runs on the F64 reference and the F32 native backend.</summary>
public sealed class AdamWTests
{
    public static TheoryData<string> Devices => new() { "reference", "native" };

    internal static Device Dev(string name) => name == "reference" ? TestDevices.Reference : TestDevices.Native;
    internal static DType Type(string name) => name == "reference" ? DType.F64 : DType.F32;

    /// <summary>One torch.optim.AdamW step on plain arrays.</summary>
    private static void TorchAdamW(double[] p, double[] g, double[] m, double[] v, int step, double lr, double b1, double b2,
        double eps, double decay)
    {
        for (int i = 0; i < p.Length; i++)
        {
            p[i] *= 1 - lr * decay;
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            double mHat = m[i] / (1 - Math.Pow(b1, step)), vHat = v[i] / (1 - Math.Pow(b2, step));
            p[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
        }
    }

    internal static Tensor Make(Device d, DType t, double[] values, params int[] dims) =>
        t == DType.F64 ? Tensor.FromArray(d, values, dims) : Tensor.FromArray(d, Array.ConvertAll(values, x => (float)x), dims);

    [Theory]
    [MemberData(nameof(Devices))]
    public void FollowsTorchAdamWOverFiveSteps(string device)
    {
        var d = Dev(device);
        var t = Type(device);
        var rng = new Rng(3);
        double[] w = [.. Enumerable.Range(0, 6).Select(_ => rng.Uniform(-1, 1))], b = [0.5, -0.25];
        using var wt = Make(d, t, w, 2, 3);
        using var bt = Make(d, t, b, 2);
        wt.RequiresGrad = true;
        bt.RequiresGrad = true;
        const double lr = 0.05, decay = 0.1;
        using var opt = new AdamW([("w", wt), ("norm", bt)], lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: decay);
        double[] mw = new double[6], vw = new double[6], mb = new double[2], vb = new double[2];
        for (int step = 1; step <= 5; step++)
        {
            double[] gw = [.. Enumerable.Range(0, 6).Select(_ => rng.Uniform(-2, 2))], gb = [rng.Uniform(-2, 2), rng.Uniform(-2, 2)];
            SetGradients(d, t, (wt, gw), (bt, gb));
            opt.Update();
            TorchAdamW(w, gw, mw, vw, step, lr, 0.9, 0.95, 1e-8, decay);
            TorchAdamW(b, gb, mb, vb, step, lr, 0.9, 0.95, 1e-8, 0.0);      // 1-D: no decay
        }
        double tol = t == DType.F64 ? 1e-12 : 1e-5;
        Assert.Equal(5, opt.Step);
        AssertClose(w, wt.ToDoubleArray(), tol);
        AssertClose(b, bt.ToDoubleArray(), tol);
    }

    /// <summary>Leaves each parameter's gradient equal to the given values: the backward of Σ p·g.</summary>
    internal static void SetGradients(Device d, DType t, params (Tensor Param, double[] Grad)[] pairs)
    {
        using var scope = new TensorScope();
        Tensor? loss = null;
        foreach (var (p, g) in pairs)
        {
            p.ZeroGrad();
            var term = (p * Make(d, t, g, p.Shape.ToArray())).Sum();
            loss = loss is null ? term : loss + term;
        }
        loss!.Backward();
    }

    internal static void AssertClose(double[] expected, double[] actual, double tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])), $"[{i}]: expected {expected[i]}, got {actual[i]}");
    }
}
