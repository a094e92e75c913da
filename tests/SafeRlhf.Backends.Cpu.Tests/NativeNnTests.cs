using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Row kernels (RMSNorm, RoPE, SwiGLU, softmax, cross-entropy, AdamW) against the reference backend through the
/// same IBackend calls at LLaMA-like sizes, where the work is split over the thread pool and the vector loops run long.
/// Every backend's forward and backward at empty, tiny and odd sizes is in the conformance suite of
/// SafeRlhf.Tensors.Tests.</summary>
public sealed class NativeNnTests
{
    private const double Atol = 2e-6, Rtol = 2e-5;

    /// <summary>Builds inputs from the given arrays on both devices, runs <paramref name="call"/> on each,
    /// and compares the outputs (the tensors at the indices in <paramref name="outputs"/>).</summary>
    private static void Compare(string what, (Array Values, int[] Dims)[] inputs, int[] outputs, Action<IBackend, Tensor[]> call,
        double atol = Atol, double rtol = Rtol)
    {
        var results = new Tensor[2][];
        int slot = 0;
        foreach (var dev in new[] { ReferenceDevice, NativeDevice })
        {
            var ts = inputs.Select(i => i.Values switch
            {
                float[] f => On(dev, f, i.Dims),
                int[] n => On(dev, n, i.Dims),
                _ => throw new ArgumentException("inputs are float[] or int[]"),
            }).ToArray();
            call(dev.Backend, ts);
            results[slot++] = ts;
        }
        foreach (int o in outputs) Close(results[0][o], results[1][o], atol, rtol, $"{what} output {o}");
        foreach (var set in results) foreach (var t in set) t.Dispose();
    }

    private static (Array, int[]) In(float[] v, params int[] dims) => (v, dims);
    private static (Array, int[]) In(int[] v, params int[] dims) => (v, dims);
    private static (Array, int[]) Out(params int[] dims) => (new float[new Shape(dims).Numel], dims);

    [Theory]
    [InlineData(17, 100)] [InlineData(4, 4096)]
    public void RmsNormForwardAndBackward(int rows, int dim)
    {
        var rng = new Rng((ulong)(rows * 977 + dim));
        var x = Random(rng, rows * dim, -2, 2);
        var w = Random(rng, dim, 0.5, 1.5);
        var dy = Random(rng, rows * dim);
        var dw0 = Random(rng, dim);
        Compare("RmsNorm", [In(x, rows, dim), In(w, dim), Out(rows, dim), Out(rows)], [2, 3],
            (b, t) => b.RmsNorm(t[0], t[1], t[2], t[3], 1e-5));
        // Backward from the reference forward's rstd; dw starts nonzero because it is accumulated into.
        using var xr = On(ReferenceDevice, x, rows, dim);
        using var wr = On(ReferenceDevice, w, dim);
        using var yr = Zeros(ReferenceDevice, rows, dim);
        using var rr = Zeros(ReferenceDevice, rows);
        ReferenceDevice.Backend.RmsNorm(xr, wr, yr, rr, 1e-5);
        var rstd = rr.ToFloatArray();
        Compare("RmsNormBackward", [In(x, rows, dim), In(w, dim), In(rstd, rows), In(dy, rows, dim), Out(rows, dim), In(dw0, dim)], [4, 5],
            (b, t) => b.RmsNormBackward(t[0], t[1], t[2], t[3], t[4], t[5]), 1e-5, 1e-4);
    }

    [Theory]
    [InlineData(2, 7, 4, 128, RopeStyle.Half)] [InlineData(1, 9, 2, 128, RopeStyle.Interleaved)]
    public void RopeBothStylesAndInverse(int batch, int seq, int heads, int headDim, RopeStyle style)
    {
        var rng = new Rng((ulong)(batch * 31 + seq * 7 + headDim));
        var x = Random(rng, batch * seq * heads * headDim);
        var pos = Enumerable.Range(0, batch * seq).Select(i => (i * 37 + 3) % 2048).ToArray();
        foreach (bool inverse in new[] { false, true })
            Compare($"Rope {style} inverse {inverse}", [In(x, batch, seq, heads, headDim), In(pos, batch, seq), Out(batch, seq, heads, headDim)], [2],
                (b, t) => b.Rope(t[0], t[1], t[2], 10000.0, style, inverse), 1e-5, 1e-5);
    }

    [Theory]
    [InlineData(1000)] [InlineData(11008 * 3)]
    public void SwiGluForwardAndBackward(int n)
    {
        var rng = new Rng((ulong)n + 1);
        var g = Random(rng, n, -12, 12);
        var u = Random(rng, n, -2, 2);
        var dy = Random(rng, n);
        Compare("SwiGlu", [In(g, n), In(u, n), Out(n)], [2], (b, t) => b.SwiGlu(t[0], t[1], t[2]));
        Compare("SwiGluBackward", [In(g, n), In(u, n), In(dy, n), Out(n), Out(n)], [3, 4],
            (b, t) => b.SwiGluBackward(t[0], t[1], t[2], t[3], t[4]));
    }

    [Theory]
    [InlineData(5, 1000)] [InlineData(2, 32000)]
    public void SoftmaxAndLogSoftmax(int rows, int dim)
    {
        var rng = new Rng((ulong)(rows * 100 + dim));
        var x = Random(rng, rows * dim, -8, 8);
        var dy = Random(rng, rows * dim);
        foreach (bool log in new[] { false, true })
        {
            Compare($"Softmax log={log}", [In(x, rows, dim), Out(rows, dim)], [1], (b, t) => b.Softmax(t[0], t[1], log), 1e-6, 2e-5);
            using var xr = On(ReferenceDevice, x, rows, dim);
            using var yr = Zeros(ReferenceDevice, rows, dim);
            ReferenceDevice.Backend.Softmax(xr, yr, log);
            var y = yr.ToFloatArray();
            Compare($"SoftmaxBackward log={log}", [In(y, rows, dim), In(dy, rows, dim), Out(rows, dim)], [2],
                (b, t) => b.SoftmaxBackward(t[0], t[1], t[2], log), 1e-5, 1e-4);
        }
    }

    [Theory]
    [InlineData(9, 100)] [InlineData(3, 32000)]
    public void CrossEntropyForwardAndBackward(int rows, int vocab)
    {
        var rng = new Rng((ulong)(rows * 3 + vocab));
        var logits = Random(rng, rows * vocab, -6, 6);
        var targets = Enumerable.Range(0, rows).Select(i => i % 3 == 2 ? -100 : (int)((i * 7919L) % vocab)).ToArray();
        var dl = Random(rng, rows, 0.1, 1);
        Compare("CrossEntropy", [In(logits, rows, vocab), In(targets, rows), Out(rows), Out(rows)], [2, 3],
            (b, t) => b.CrossEntropy(t[0], t[1], t[2], t[3], -100), 1e-5, 1e-5);
        using var xr = On(ReferenceDevice, logits, rows, vocab);
        using var tr = On(ReferenceDevice, targets, rows);
        using var lr = Zeros(ReferenceDevice, rows);
        using var er = Zeros(ReferenceDevice, rows);
        ReferenceDevice.Backend.CrossEntropy(xr, tr, lr, er, -100);
        var lse = er.ToFloatArray();
        Compare("CrossEntropyBackward", [In(logits, rows, vocab), In(targets, rows), In(lse, rows), In(dl, rows), Out(rows, vocab)], [4],
            (b, t) => b.CrossEntropyBackward(t[0], t[1], t[2], t[3], t[4], -100), 1e-7, 1e-4);
    }

    [Theory]
    [InlineData(4097)]
    public void AdamWMatchesReference(int n)
    {
        var rng = new Rng((ulong)n + 9);
        var p = Random(rng, n);
        var g = Random(rng, n, -0.1, 0.1);
        var m = Random(rng, n, -0.01, 0.01);
        var v = Random(rng, n, 0, 0.001);
        foreach (int step in new[] { 1, 7 })
            Compare($"AdamW step {step}", [In(p, n), In(g, n), In(m, n), In(v, n)], [0, 2, 3],
                (b, t) => b.AdamW(t[0], t[1], t[2], t[3], 1e-3, 0.9, 0.95, 1e-8, 0.1, step), 1e-6, 1e-4);
    }
}
