namespace SafeRlhf.Tensors;

// Elementwise unary and binary ops (binary ops broadcast NumPy-style); backward beside each forward.
public static partial class Ops
{
    // ---------------- unary ----------------

    private static Tensor Unary(string name, UnaryOp op, Tensor x, double a = 0, double b = 0)
    {
        CheckCompute(name, x);
        var src = x.Contiguous();
        var y = OutputLike(x);
        x.Backend.Unary(op, src, y, a, b);
        var result = Record(name, y, [x], [src, y], dy =>
        {
            var dx = OutputLike(src);
            x.Backend.UnaryBackward(op, src, y, dy.Contiguous(), dx, a, b);
            return [dx];
        });
        return Finish(result, src);
    }

    public static Tensor Neg(this Tensor x) => Unary("Neg", UnaryOp.Neg, x);
    public static Tensor Exp(this Tensor x) => Unary("Exp", UnaryOp.Exp, x);
    public static Tensor Log(this Tensor x) => Unary("Log", UnaryOp.Log, x);
    public static Tensor Sqrt(this Tensor x) => Unary("Sqrt", UnaryOp.Sqrt, x);
    public static Tensor Rsqrt(this Tensor x) => Unary("Rsqrt", UnaryOp.Rsqrt, x);
    public static Tensor Silu(this Tensor x) => Unary("Silu", UnaryOp.Silu, x);
    public static Tensor Sigmoid(this Tensor x) => Unary("Sigmoid", UnaryOp.Sigmoid, x);
    /// <summary>log σ(x), computed stably for large |x|.</summary>
    public static Tensor LogSigmoid(this Tensor x) => Unary("LogSigmoid", UnaryOp.LogSigmoid, x);
    public static Tensor Square(this Tensor x) => Unary("Square", UnaryOp.Square, x);
    public static Tensor Abs(this Tensor x) => Unary("Abs", UnaryOp.Abs, x);
    /// <summary>y = alpha · x.</summary>
    public static Tensor Scale(this Tensor x, double alpha) => Unary("Scale", UnaryOp.Scale, x, alpha);
    /// <summary>y = x + alpha.</summary>
    public static Tensor AddScalar(this Tensor x, double alpha) => Unary("AddScalar", UnaryOp.AddScalar, x, alpha);

    /// <summary>y = min(max(x, min), max); the gradient passes where min ≤ x ≤ max.</summary>
    public static Tensor Clamp(this Tensor x, double min, double max)
    {
        if (min > max) throw new ArgumentException($"Clamp: min {min} > max {max}");
        return Unary("Clamp", UnaryOp.Clamp, x, min, max);
    }

    // ---------------- binary ----------------

    /// <summary>Which operands a binary op's backward reads: a, b and the output c.</summary>
    [Flags]
    private enum Reads { None = 0, A = 1, B = 2, C = 4 }

    private static Tensor Binary(string name, BinaryOp op, Tensor a, Tensor b, Reads reads,
        Func<Tensor, Tensor, Tensor, Tensor, (Tensor? da, Tensor? db)>? backward)
    {
        CheckSame(name, a, b);
        var dims = Shape.Broadcast(name, a.Shape, b.Shape);
        var c = Output(a.Device, a.DType, dims);
        using (var av = BroadcastView(name, a, dims))
        using (var bv = BroadcastView(name, b, dims))
            a.Backend.Binary(op, av, bv, c);
        if (backward is null) return c;
        var aDims = a.Shape.ToArray();
        var bDims = b.Shape.ToArray();
        Tensor[] saved = [.. reads.HasFlag(Reads.A) ? [a] : Array.Empty<Tensor>(), .. reads.HasFlag(Reads.B) ? [b] : Array.Empty<Tensor>(),
            .. reads.HasFlag(Reads.C) ? [c] : Array.Empty<Tensor>()];
        return Record(name, c, [a, b], saved, dy =>
        {
            var (da, db) = backward(a, b, c, dy);
            return [a.RequiresGrad && da is not null ? SumTo(da, aDims) : null,
                    b.RequiresGrad && db is not null ? SumTo(db, bDims) : null];
        });
    }

    public static Tensor Add(Tensor a, Tensor b) =>
        Binary("Add", BinaryOp.Add, a, b, Reads.None, (_, _, _, dy) => (dy, dy));

    public static Tensor Sub(Tensor a, Tensor b) =>
        Binary("Sub", BinaryOp.Sub, a, b, Reads.None, (_, _, _, dy) => (dy, dy.Neg()));

    public static Tensor Mul(Tensor a, Tensor b) =>
        Binary("Mul", BinaryOp.Mul, a, b, Reads.A | Reads.B, (x, y, _, dy) => (Mul(dy, y), Mul(dy, x)));

    // d(a/b)/da = 1/b; d(a/b)/db = −(a/b)/b
    public static Tensor Div(Tensor a, Tensor b) =>
        Binary("Div", BinaryOp.Div, a, b, Reads.B | Reads.C, (_, y, c, dy) => (Div(dy, y), Div(Mul(dy, c), y).Neg()));

    /// <summary>Elementwise minimum; on ties the gradient goes to a.</summary>
    public static Tensor Minimum(Tensor a, Tensor b) =>
        Binary("Minimum", BinaryOp.Minimum, a, b, Reads.A | Reads.B, (x, y, _, dy) =>
        {
            var pickA = Compare(BinaryOp.LessEqual, x, y);
            return (Mul(dy, pickA), Mul(dy, OneMinus(pickA)));
        });

    /// <summary>Elementwise maximum; on ties the gradient goes to a.</summary>
    public static Tensor Maximum(Tensor a, Tensor b) =>
        Binary("Maximum", BinaryOp.Maximum, a, b, Reads.A | Reads.B, (x, y, _, dy) =>
        {
            var pickA = Compare(BinaryOp.GreaterEqual, x, y);
            return (Mul(dy, pickA), Mul(dy, OneMinus(pickA)));
        });

    private static Tensor OneMinus(Tensor x) => x.Neg().AddScalar(1);

    /// <summary>1 where the comparison holds, else 0 (no gradient).</summary>
    public static Tensor Compare(BinaryOp op, Tensor a, Tensor b)
    {
        if (op is BinaryOp.Add or BinaryOp.Sub or BinaryOp.Mul or BinaryOp.Div or BinaryOp.Minimum or BinaryOp.Maximum)
            throw new ArgumentException($"Compare: {op} is not a comparison");
        return Binary("Compare", op, a, b, Reads.None, null);
    }

    /// <summary>y = cond ≠ 0 ? a : b with broadcasting over all three (cond in the dtype of a and b).</summary>
    public static Tensor Where(Tensor cond, Tensor a, Tensor b)
    {
        CheckSame("Where", a, b);
        CheckSame("Where", cond, a);
        var dims = Shape.Broadcast("Where", new Shape(Shape.Broadcast("Where", a.Shape, b.Shape)), cond.Shape);
        var y = Output(a.Device, a.DType, dims);
        using (var cv = BroadcastView("Where", cond, dims))
        using (var av = BroadcastView("Where", a, dims))
        using (var bv = BroadcastView("Where", b, dims))
            a.Backend.Where(cv, av, bv, y);
        var aDims = a.Shape.ToArray();
        var bDims = b.Shape.ToArray();
        return Record("Where", y, [cond, a, b], [cond], dy =>
        {
            var zero = Full(dy.Device, dy.DType, 0.0);
            return [null,
                    a.RequiresGrad ? SumTo(Where(cond, dy, zero), aDims) : null,
                    b.RequiresGrad ? SumTo(Where(cond, zero, dy), bDims) : null];
        });
    }
}

public sealed partial class Tensor
{
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);
    public static Tensor operator -(Tensor a) => Ops.Neg(a);
    public static Tensor operator *(Tensor a, double s) => Ops.Scale(a, s);
    public static Tensor operator *(double s, Tensor a) => Ops.Scale(a, s);
    public static Tensor operator /(Tensor a, double s) => Ops.Scale(a, 1.0 / s);
    public static Tensor operator +(Tensor a, double s) => Ops.AddScalar(a, s);
    public static Tensor operator -(Tensor a, double s) => Ops.AddScalar(a, -s);
}
