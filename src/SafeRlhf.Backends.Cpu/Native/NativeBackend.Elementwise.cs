using CommunityToolkit.HighPerformance.Buffers;
using SafeRlhf.Tensors;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace SafeRlhf.Backends.Cpu.Native;

// Elementwise ops and reductions on F32: one vectorised TensorPrimitives (or MaskKernels) call per row; broadcast and
// strided operands are walked row by row (StridedRows). The naive double versions are ReferenceBackend's.
public sealed partial class NativeBackend
{
    public void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b)
    {
        RequireF32("Unary." + op, x, y);
        RequireSameDims("Unary." + op, x, y);
        var xs = Floats(x);
        var ys = Floats(y);
        float fa = (float)a, fb = (float)b;
        switch (op)
        {
            case UnaryOp.Neg: TP.Negate(xs, ys); break;
            case UnaryOp.Exp: TP.Exp(xs, ys); break;
            case UnaryOp.Log: TP.Log(xs, ys); break;
            case UnaryOp.Sqrt: TP.Sqrt(xs, ys); break;
            case UnaryOp.Rsqrt: TP.ReciprocalSqrt(xs, ys); break;
            case UnaryOp.Silu: TP.Sigmoid(xs, ys); TP.Multiply(ys, xs, ys); break;
            case UnaryOp.Sigmoid: TP.Sigmoid(xs, ys); break;
            case UnaryOp.LogSigmoid: LogSigmoid(xs, ys); break;
            case UnaryOp.Square: TP.Multiply(xs, xs, ys); break;
            case UnaryOp.Abs: TP.Abs(xs, ys); break;
            case UnaryOp.Scale: TP.Multiply(xs, fa, ys); break;
            case UnaryOp.AddScalar: TP.Add(xs, fa, ys); break;
            case UnaryOp.Clamp: TP.Max(xs, fa, ys); TP.Min(ys, fb, ys); break;
            default: throw Unsupported("Unary." + op, x);
        }
    }

    /// <summary>log σ(x) = min(x, 0) − log(1 + e^−|x|), stable for large |x|.</summary>
    private static void LogSigmoid(ReadOnlySpan<float> x, Span<float> y)
    {
        using var low = MemoryOwner<float>.Allocate(x.Length);
        TP.Abs(x, y);
        TP.Negate(y, y);
        TP.Exp(y, y);
        TP.LogP1(y, y);
        TP.Min(x, 0f, low.Span);
        TP.Subtract(low.Span, y, y);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b)
    {
        string name = "UnaryBackward." + op;
        RequireF32(name, x, y, dy, dx);
        RequireSameDims(name, x, y, dy, dx);
        var xs = Floats(x);
        var ys = Floats(y);
        var g = Floats(dy);
        var d = Floats(dx);
        switch (op)
        {
            case UnaryOp.Neg: TP.Negate(g, d); break;
            case UnaryOp.Exp: TP.Multiply(g, ys, d); break;
            case UnaryOp.Log: TP.Divide(g, xs, d); break;
            case UnaryOp.Sqrt: TP.Divide(g, ys, d); TP.Multiply(d, 0.5f, d); break;               // dy · 0.5 / y
            case UnaryOp.Rsqrt: TP.Multiply(ys, ys, d); TP.Multiply(d, ys, d); TP.Multiply(d, g, d); TP.Multiply(d, -0.5f, d); break;
            case UnaryOp.Silu: SiluBackward(xs, g, d); break;
            case UnaryOp.Sigmoid: TP.Subtract(1f, ys, d); TP.Multiply(d, ys, d); TP.Multiply(d, g, d); break; // dy · y(1 − y)
            case UnaryOp.LogSigmoid: TP.Negate(xs, d); TP.Sigmoid(d, d); TP.Multiply(d, g, d); break;      // dy · σ(−x)
            case UnaryOp.Square: TP.Multiply(xs, g, d); TP.Multiply(d, 2f, d); break;
            case UnaryOp.Abs: MaskKernels.SignTimes(xs, g, d); break;
            case UnaryOp.Scale: TP.Multiply(g, (float)a, d); break;
            case UnaryOp.AddScalar: g.CopyTo(d); break;
            case UnaryOp.Clamp: MaskKernels.InRangeTimes(xs, (float)a, (float)b, g, d); break;
            default: throw Unsupported(name, x);
        }
    }

    /// <summary>dx = dy · σ(x) · (1 + x · (1 − σ(x))).</summary>
    private static void SiluBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        using var t = MemoryOwner<float>.Allocate(x.Length);
        var s = t.Span;
        TP.Sigmoid(x, dx);                 // σ
        TP.Subtract(1f, dx, s);            // 1 − σ
        TP.Multiply(s, x, s);              // x(1 − σ)
        TP.Add(s, 1f, s);                  // 1 + x(1 − σ)
        TP.Multiply(dx, s, dx);
        TP.Multiply(dx, dy, dx);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c)
    {
        string name = "Binary." + op;
        RequireF32Any(name, a, b);
        RequireF32(name, c);
        RequireSameDims(name, a, b, c);
        var rows = new StridedRows(c.Shape.Dims, c, a, b);
        var av = AllFloats(a);
        var bv = AllFloats(b);
        var cv = AllFloats(c);
        int n = rows.Length;
        using var sa = MemoryOwner<float>.Allocate(n);
        using var sb = MemoryOwner<float>.Allocate(n);
        foreach (var at in rows.Starts())
            BinaryRow(op, StridedRows.Read(av, at[1], rows.RowStride[1], n, sa), StridedRows.Read(bv, at[2], rows.RowStride[2], n, sb),
                cv.Slice(checked((int)at[0]), n));
    }

    private static void BinaryRow(BinaryOp op, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c)
    {
        switch (op)
        {
            case BinaryOp.Add: TP.Add(a, b, c); break;
            case BinaryOp.Sub: TP.Subtract(a, b, c); break;
            case BinaryOp.Mul: TP.Multiply(a, b, c); break;
            case BinaryOp.Div: TP.Divide(a, b, c); break;
            case BinaryOp.Minimum: TP.Min(a, b, c); break;
            case BinaryOp.Maximum: TP.Max(a, b, c); break;
            default: MaskKernels.Compare(op, a, b, c); break;
        }
    }

    public void Where(Tensor cond, Tensor a, Tensor b, Tensor y)
    {
        RequireF32Any("Where", cond, a, b);
        RequireF32("Where", y);
        RequireSameDims("Where", cond, a, b, y);
        var rows = new StridedRows(y.Shape.Dims, y, cond, a, b);
        var mv = AllFloats(cond);
        var av = AllFloats(a);
        var bv = AllFloats(b);
        var yv = AllFloats(y);
        int n = rows.Length;
        using var sm = MemoryOwner<float>.Allocate(n);
        using var sa = MemoryOwner<float>.Allocate(n);
        using var sb = MemoryOwner<float>.Allocate(n);
        foreach (var at in rows.Starts())
            MaskKernels.Select(StridedRows.Read(mv, at[1], rows.RowStride[1], n, sm), StridedRows.Read(av, at[2], rows.RowStride[2], n, sa),
                StridedRows.Read(bv, at[3], rows.RowStride[3], n, sb), yv.Slice(checked((int)at[0]), n));
    }

    /// <summary>Walks x (contiguous) row by row against y viewed with stride 0 on the reduced axes: a packed y row
    /// accumulates x's row (leading axes reduced), a broadcast one takes the row's sum (trailing axes reduced).</summary>
    public void ReduceSum(Tensor x, Tensor y)
    {
        RequireF32("ReduceSum", x, y);
        if (x.Rank != y.Rank) throw new TensorShapeException($"ReduceSum: x {x.Shape} and y {y.Shape} differ in rank");
        var yStrides = new long[x.Rank];
        var packed = Shape.ContiguousStrides(y.Shape.Dims);
        for (int i = 0; i < x.Rank; i++)
        {
            if (y.Shape[i] != x.Shape[i] && y.Shape[i] != 1)
                throw new TensorShapeException($"ReduceSum: cannot reduce {x.Shape} to {y.Shape}");
            yStrides[i] = y.Shape[i] == 1 ? 0 : packed[i];
        }
        var rows = new StridedRows(x.Shape.Dims, [(x.Shape.StridesArray(), x.Offset), (yStrides, y.Offset)]);
        var xv = AllFloats(x);
        var yv = AllFloats(y);
        int n = rows.Length;
        foreach (var at in rows.Starts())
        {
            var xr = xv.Slice(checked((int)at[0]), n);
            if (rows.RowStride[1] == 0) yv[checked((int)at[1])] += TP.Sum(xr);
            else
            {
                var yr = yv.Slice(checked((int)at[1]), n);
                TP.Add(yr, xr, yr);
            }
        }
    }
}
