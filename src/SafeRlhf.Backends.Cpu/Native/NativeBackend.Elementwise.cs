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
            case UnaryOp.Silu or UnaryOp.Sigmoid or UnaryOp.LogSigmoid: InDouble(op, xs, ys); break;
            case UnaryOp.Square: TP.Multiply(xs, xs, ys); break;
            case UnaryOp.Abs: TP.Abs(xs, ys); break;
            case UnaryOp.Scale: TP.Multiply(xs, fa, ys); break;
            case UnaryOp.AddScalar: TP.Add(xs, fa, ys); break;
            case UnaryOp.Clamp: TP.Max(xs, fa, ys); TP.Min(ys, fb, ys); break;
            default: throw Unsupported("Unary." + op, x);
        }
    }

    /// <summary>Elements per chunk of the ops computed in double: widened, computed with vectorised double calls and
    /// narrowed once, as the double reference rounds.</summary>
    private const int Chunk = 4096;

    /// <summary>Silu, Sigmoid and LogSigmoid (min(x, 0) − log(1 + e^−|x|), stable for large |x|) computed in double.</summary>
    private static void InDouble(UnaryOp op, ReadOnlySpan<float> x, Span<float> y)
    {
        using var xo = MemoryOwner<double>.Allocate(Math.Min(Chunk, x.Length));
        using var yo = MemoryOwner<double>.Allocate(Math.Min(Chunk, x.Length));
        for (int start = 0; start < x.Length; start += Chunk)
        {
            int n = Math.Min(Chunk, x.Length - start);
            Span<double> xd = xo.Span[..n], yd = yo.Span[..n];
            TP.ConvertTruncating<float, double>(x.Slice(start, n), xd);
            switch (op)
            {
                case UnaryOp.Silu: TP.Sigmoid(xd, yd); TP.Multiply(xd, yd, yd); break;
                case UnaryOp.Sigmoid: TP.Sigmoid(xd, yd); break;
                default:
                    TP.Abs(xd, yd); TP.Negate(yd, yd); TP.Exp(yd, yd); TP.Add(yd, 1.0, yd); TP.Log(yd, yd);
                    TP.Min(xd, 0.0, xd); TP.Subtract(xd, yd, yd);
                    break;
            }
            TP.ConvertTruncating<double, float>(yd, y.Slice(start, n));
        }
    }

    /// <summary>dx = dy · f'(x) computed in double (as the reference does), chunk by chunk, vectorised.</summary>
    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b)
    {
        string name = "UnaryBackward." + op;
        RequireF32(name, x, y, dy, dx);
        RequireSameDims(name, x, y, dy, dx);
        if (!Enum.IsDefined(op)) throw Unsupported(name, x);
        var xs = Floats(x);
        var ys = Floats(y);
        var g = Floats(dy);
        var d = Floats(dx);
        int size = Math.Min(Chunk, xs.Length);
        using var xo = MemoryOwner<double>.Allocate(size);
        using var yo = MemoryOwner<double>.Allocate(size);
        using var go = MemoryOwner<double>.Allocate(size);
        using var to = MemoryOwner<double>.Allocate(size);
        for (int start = 0; start < xs.Length; start += Chunk)
        {
            int n = Math.Min(Chunk, xs.Length - start);
            Span<double> xd = xo.Span[..n], yd = yo.Span[..n], gd = go.Span[..n], t = to.Span[..n];
            TP.ConvertTruncating<float, double>(xs.Slice(start, n), xd);
            TP.ConvertTruncating<float, double>(ys.Slice(start, n), yd);
            TP.ConvertTruncating<float, double>(g.Slice(start, n), gd);
            Derivative(op, xd, yd, a, b, t);
            TP.Multiply(gd, t, t);
            TP.ConvertTruncating<double, float>(t, d.Slice(start, n));
        }
    }

    /// <summary>t = f'(x) given x and y = f(x), with the reference backend's formulas (y is overwritten for Silu).</summary>
    private static void Derivative(UnaryOp op, ReadOnlySpan<double> x, Span<double> y, double a, double b, Span<double> t)
    {
        switch (op)
        {
            case UnaryOp.Neg: t.Fill(-1); break;
            case UnaryOp.Exp: y.CopyTo(t); break;
            case UnaryOp.Log: TP.Reciprocal(x, t); break;
            case UnaryOp.Sqrt: TP.Divide(0.5, y, t); break;                                              // 0.5 / y
            case UnaryOp.Rsqrt: TP.Multiply(y, -0.5, t); TP.Multiply(t, y, t); TP.Multiply(t, y, t); break;  // −0.5·y³
            case UnaryOp.Silu:                                                                           // σ · (1 + x(1 − σ))
                TP.Sigmoid(x, t); TP.Subtract(1.0, t, y); TP.Multiply(x, y, y); TP.Add(y, 1.0, y); TP.Multiply(t, y, t);
                break;
            case UnaryOp.Sigmoid: TP.Subtract(1.0, y, t); TP.Multiply(y, t, t); break;                   // y(1 − y)
            case UnaryOp.LogSigmoid: TP.Negate(x, t); TP.Sigmoid(t, t); break;                           // σ(−x)
            case UnaryOp.Square: TP.Multiply(x, 2.0, t); break;
            case UnaryOp.Abs: MaskKernels.Sign(x, t); break;
            case UnaryOp.Scale: t.Fill(a); break;
            case UnaryOp.AddScalar: t.Fill(1); break;
            case UnaryOp.Clamp: MaskKernels.InRange(x, a, b, t); break;
        }
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

    /// <summary>Walks x (contiguous) row by row against y viewed with stride 0 on the reduced axes, accumulating in double
    /// as the reference does: a packed y row accumulates x's row (leading axes reduced), a broadcast one takes the row's
    /// sum (trailing axes reduced). Only the order of the additions within a row differs from the reference.</summary>
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
        var rows = new StridedRows(x.Shape.Dims, [(x.Shape.StridesArray(), 0L), (yStrides, 0L)]);
        var xv = Floats(x);
        var yv = Floats(y);
        int n = rows.Length;
        using var acc = MemoryOwner<double>.Allocate(yv.Length);
        using var row = MemoryOwner<double>.Allocate(n);
        acc.Span.Clear();                                         // y = Σ x (overwritten, as the contract says)
        foreach (var at in rows.Starts())
        {
            TP.ConvertTruncating<float, double>(xv.Slice(checked((int)at[0]), n), row.Span);
            if (rows.RowStride[1] == 0) acc.Span[checked((int)at[1])] += TP.Sum<double>(row.Span);
            else
            {
                var yr = acc.Span.Slice(checked((int)at[1]), n);
                TP.Add(yr, row.Span, yr);
            }
        }
        TP.ConvertTruncating<double, float>(acc.Span, yv);
    }
}
