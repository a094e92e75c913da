using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>The row ops of the model (softmax, RMSNorm, RoPE, SwiGLU, cross-entropy), forward and backward, each written once
/// and run on every backend against <see cref="Oracle"/>. Backwards start from the oracle's saved values (rounded to F32)
/// so that every backend differentiates the same state.</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class NnConformanceTests
{
    /// <summary>(rows, last-axis length): empty, one element, odd widths below and past a vector, a wide row.</summary>
    private static readonly (int Rows, int Dim)[] RowShapes = [(0, 5), (1, 1), (3, 7), (4, 33), (2, 130)];

    public static TheoryData<string, bool> LogCases()
    {
        var data = new TheoryData<string, bool>();
        foreach (var b in BackendNames) foreach (bool log in new[] { false, true }) data.Add(b, log);
        return data;
    }

    [Theory]
    [MemberData(nameof(LogCases))]
    public void SoftmaxAndItsBackward(string backend, bool log)
    {
        var d = Device(backend);
        foreach (var (rows, dim) in RowShapes)
        {
            using var scope = new TensorScope();
            var x = Values32(20, rows * dim, -6, 6);
            if (rows > 1 && dim > 2) { x[dim] = double.NegativeInfinity; x[dim + 2] = double.NegativeInfinity; }   // masked logits
            var y = Tensor.Zeros(d, DType.F32, rows, dim);
            d.Backend.Softmax(Make(d, x, rows, dim), y, log);
            var expected = Oracle.Softmax(x, dim, log);
            AssertClose(expected, y, $"softmax log={log} {rows}x{dim}", 1e-6, 1e-5);

            var ys = F32(expected);
            var dy = Values32(21, rows * dim);
            var dx = Tensor.Zeros(d, DType.F32, rows, dim);
            d.Backend.SoftmaxBackward(Make(d, ys, rows, dim), Make(d, dy, rows, dim), dx, log);
            AssertClose(Oracle.SoftmaxBackward(ys, dy, dim, log), dx, $"dsoftmax log={log} {rows}x{dim}", 1e-5, 1e-4);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void RmsNormAndItsBackward(string backend)
    {
        var d = Device(backend);
        foreach (var (rows, dim) in RowShapes)
        {
            using var scope = new TensorScope();
            var x = Values32(22, rows * dim);
            var w = Values32(23, dim, 0.5, 1.5);
            var y = Tensor.Zeros(d, DType.F32, rows, dim);
            var rstd = Tensor.Zeros(d, DType.F32, rows);
            d.Backend.RmsNorm(Make(d, x, rows, dim), Make(d, w, dim), y, rstd, 1e-5);
            var (ey, er) = Oracle.RmsNorm(x, w, 1e-5);
            AssertClose(ey, y, $"rmsnorm {rows}x{dim}", 1e-5, 1e-5);
            AssertClose(er, rstd, $"rstd {rows}x{dim}", 1e-5, 1e-5);

            var rs = F32(er);
            var dy = Values32(24, rows * dim);
            var dw0 = Values32(25, dim);                                          // dw is accumulated into
            var dx = Tensor.Zeros(d, DType.F32, rows, dim);
            var dw = Make(d, dw0, dim);
            d.Backend.RmsNormBackward(Make(d, x, rows, dim), Make(d, w, dim), Make(d, rs, rows), Make(d, dy, rows, dim), dx, dw);
            var (edx, edw) = Oracle.RmsNormBackward(x, w, rs, dy, dw0);
            AssertClose(edx, dx, $"rmsnorm dx {rows}x{dim}", 1e-4, 1e-4);
            AssertClose(edw, dw, $"rmsnorm dw {rows}x{dim}", 1e-4, 1e-4);
        }
    }

    public static TheoryData<string, RopeStyle, bool> RopeCases()
    {
        var data = new TheoryData<string, RopeStyle, bool>();
        foreach (var b in BackendNames)
            foreach (var style in Enum.GetValues<RopeStyle>())
                foreach (bool inverse in new[] { false, true }) data.Add(b, style, inverse);
        return data;
    }

    /// <summary>Rope's backward is the inverse rotation; both run here, on positions up to 5000.</summary>
    [Theory]
    [MemberData(nameof(RopeCases))]
    public void RopeAndItsInverse(string backend, RopeStyle style, bool inverse)
    {
        var d = Device(backend);
        foreach (var (b, t, h, hd) in new[] { (0, 3, 2, 4), (1, 1, 1, 2), (2, 5, 3, 8), (1, 3, 2, 18) })
        {
            using var scope = new TensorScope();
            var x = Values32(26, b * t * h * hd);
            int[] all = [0, 1, 2, 3, 4, 7, 100, 2047, 5000, 9];
            var pos = Enumerable.Range(0, b * t).Select(i => all[i % all.Length]).ToArray();
            var y = Tensor.Zeros(d, DType.F32, b, t, h, hd);
            d.Backend.Rope(Make(d, x, b, t, h, hd), Tensor.FromArray(d, pos, b, t), y, 10000.0, style, inverse);
            AssertClose(Oracle.Rope(x, pos, h, hd, 10000.0, style, inverse), y, $"rope {style} inverse={inverse} {b}x{t}x{h}x{hd}", 2e-5, 1e-4);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void SwiGluAndItsBackward(string backend)
    {
        var d = Device(backend);
        foreach (var (rows, dim) in RowShapes)
        {
            using var scope = new TensorScope();
            var g = Values32(27, rows * dim, -12, 12);
            var u = Values32(28, rows * dim);
            var dy = Values32(29, rows * dim);
            var (ey, edg, edu) = Oracle.SwiGlu(g, u, dy);
            var y = Tensor.Zeros(d, DType.F32, rows, dim);
            d.Backend.SwiGlu(Make(d, g, rows, dim), Make(d, u, rows, dim), y);
            AssertClose(ey, y, $"swiglu {rows}x{dim}", 1e-5, 1e-5);
            var dg = Tensor.Zeros(d, DType.F32, rows, dim);
            var du = Tensor.Zeros(d, DType.F32, rows, dim);
            d.Backend.SwiGluBackward(Make(d, g, rows, dim), Make(d, u, rows, dim), Make(d, dy, rows, dim), dg, du);
            AssertClose(edg, dg, $"swiglu dGate {rows}x{dim}", 1e-5, 1e-5);
            AssertClose(edu, du, $"swiglu dUp {rows}x{dim}", 1e-5, 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void CrossEntropyAndItsBackward(string backend)
    {
        var d = Device(backend);
        foreach (var (rows, vocab) in RowShapes)
        {
            using var scope = new TensorScope();
            var logits = Values32(30, rows * vocab, -5, 5);
            var targets = Enumerable.Range(0, rows).Select(i => i % 3 == 1 ? -100 : (i * 7919) % vocab).ToArray();   // every third row ignored
            var losses = Tensor.Zeros(d, DType.F32, rows);
            var lse = Tensor.Zeros(d, DType.F32, rows);
            d.Backend.CrossEntropy(Make(d, logits, rows, vocab), Tensor.FromArray(d, targets, rows), losses, lse, -100);
            var (el, expectedLse) = Oracle.CrossEntropy(logits, targets, vocab, -100);
            AssertClose(el, losses, $"cross-entropy {rows}x{vocab}", 1e-5, 1e-5);
            AssertClose(expectedLse, lse, $"cross-entropy lse {rows}x{vocab}", 1e-5, 1e-5);

            var ls = F32(expectedLse);
            var dl = Values32(31, rows, 0.1, 1);
            var dx = Tensor.Zeros(d, DType.F32, rows, vocab);
            d.Backend.CrossEntropyBackward(Make(d, logits, rows, vocab), Tensor.FromArray(d, targets, rows), Make(d, ls, rows), Make(d, dl, rows), dx, -100);
            AssertClose(Oracle.CrossEntropyBackward(logits, targets, ls, dl, vocab, -100), dx, $"cross-entropy dLogits {rows}x{vocab}", 1e-6, 1e-4);
        }
    }

    /// <summary>A target outside [0, V) that is not the ignore index fails with a <see cref="TensorIndexException"/> that
    /// names the row, on every backend.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void CrossEntropyRejectsATargetOutOfRange(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var losses = Tensor.Zeros(d, DType.F32, 2);
        var lse = Tensor.Zeros(d, DType.F32, 2);
        var e = Assert.ThrowsAny<Exception>(() =>
            d.Backend.CrossEntropy(Make(d, Values(32, 10), 2, 5), Tensor.FromArray(d, new[] { 1, 5 }, 2), losses, lse, -100));
        Assert.True(e is TensorIndexException, $"{backend}: {e.GetType().Name}");
        Assert.Contains("out of range [0, 5) at row 1", e.Message);
    }
}
