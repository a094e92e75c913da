using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Reference.Elements;

namespace SafeRlhf.Backends.Cpu.Reference;

/// <summary>The oracle: plain C# for every op, computing in double whatever the storage dtype. Every
/// other backend is tested against it. Slow by design; it must be right.</summary>
public sealed partial class ReferenceBackend(CpuAllocator allocator) : IBackend
{
    /// <summary>A backend on the process's shared host memory pool.</summary>
    public ReferenceBackend() : this(CpuAllocator.Shared) { }

    public string Name => "reference";

    // ---------------- memory ----------------

    /// <summary>The host memory pool this backend allocates from.</summary>
    public CpuAllocator Allocator { get; } = allocator;

    public Storage Allocate(DType dtype, long count) => new CpuStorage(this, Allocator, dtype.ByteCount(count));

    public MemoryStats Memory => Allocator.Stats;

    public void ResetPeakMemory() => Allocator.ResetPeak();

    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src) =>
        src.CopyTo(((CpuStorage)dst).Bytes[(int)byteOffset..]);

    public void Read(Storage src, long byteOffset, Span<byte> dst) =>
        ((CpuStorage)src).Bytes.Slice((int)byteOffset, dst.Length).CopyTo(dst);

    public void Copy(Tensor src, Tensor dst)
    {
        RequireSameDims("Copy", src, dst);
        if (src.DType.IsQuantized() || dst.DType.IsQuantized())
        {
            if (src.DType != dst.DType || !src.IsContiguous || !dst.IsContiguous)
                throw new TensorDTypeException($"Copy: quantized tensors copy only as contiguous {src.DType} → {dst.DType}");
            RawBytes(src)[..(int)src.DType.ByteCount(src.Numel)].CopyTo(RawBytes(dst));
            return;
        }
        Store(dst, Load(src));
    }

    public void Fill(Tensor dst, double value)
    {
        var values = new double[dst.Numel];
        Array.Fill(values, value);
        Store(dst, values);
    }

    // ---------------- elementwise ----------------

    public void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b)
    {
        var xs = Load(x);
        var ys = new double[xs.Length];
        for (int i = 0; i < xs.Length; i++) ys[i] = UnaryForward(op, xs[i], a, b);
        Store(y, ys);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b)
    {
        var xs = Load(x);
        var ys = Load(y);
        var dys = Load(dy);
        var dxs = new double[xs.Length];
        for (int i = 0; i < xs.Length; i++) dxs[i] = dys[i] * UnaryDerivative(op, xs[i], ys[i], a, b);
        Store(dx, dxs);
    }

    internal static double UnaryForward(UnaryOp op, double x, double a, double b) => op switch
    {
        UnaryOp.Neg => -x,
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1.0 / Math.Sqrt(x),
        UnaryOp.Silu => x * Sigmoid(x),
        UnaryOp.Sigmoid => Sigmoid(x),
        UnaryOp.LogSigmoid => Math.Min(x, 0) - Math.Log(1 + Math.Exp(-Math.Abs(x))),
        UnaryOp.Square => x * x,
        UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Scale => a * x,
        UnaryOp.AddScalar => x + a,
        UnaryOp.Clamp => Math.Min(Math.Max(x, a), b),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };

    /// <summary>dy/dx of the unary op at x (y = f(x) given).</summary>
    internal static double UnaryDerivative(UnaryOp op, double x, double y, double a, double b) => op switch
    {
        UnaryOp.Neg => -1,
        UnaryOp.Exp => y,
        UnaryOp.Log => 1 / x,
        UnaryOp.Sqrt => 0.5 / y,
        UnaryOp.Rsqrt => -0.5 * y * y * y,
        UnaryOp.Silu => Sigmoid(x) * (1 + x * (1 - Sigmoid(x))),
        UnaryOp.Sigmoid => y * (1 - y),
        UnaryOp.LogSigmoid => Sigmoid(-x),
        UnaryOp.Square => 2 * x,
        UnaryOp.Abs => Math.Sign(x),
        UnaryOp.Scale => a,
        UnaryOp.AddScalar => 1,
        UnaryOp.Clamp => x >= a && x <= b ? 1 : 0,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };

    internal static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c)
    {
        var av = Load(a);
        var bv = Load(b);
        var cv = new double[av.Length];
        for (int i = 0; i < cv.Length; i++) cv[i] = BinaryForward(op, av[i], bv[i]);
        Store(c, cv);
    }

    internal static double BinaryForward(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Minimum => Math.Min(a, b),
        BinaryOp.Maximum => Math.Max(a, b),
        BinaryOp.Less => a < b ? 1 : 0,
        BinaryOp.LessEqual => a <= b ? 1 : 0,
        BinaryOp.Greater => a > b ? 1 : 0,
        BinaryOp.GreaterEqual => a >= b ? 1 : 0,
        BinaryOp.Equal => a == b ? 1 : 0,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };

    public void Where(Tensor cond, Tensor a, Tensor b, Tensor y)
    {
        var cv = Load(cond);
        var av = Load(a);
        var bv = Load(b);
        var yv = new double[cv.Length];
        for (int i = 0; i < yv.Length; i++) yv[i] = cv[i] != 0 ? av[i] : bv[i];
        Store(y, yv);
    }

    public void ReduceSum(Tensor x, Tensor y)
    {
        if (x.Rank != y.Rank) throw new TensorShapeException($"ReduceSum: x {x.Shape} and y {y.Shape} differ in rank");
        for (int i = 0; i < x.Rank; i++)
            if (y.Shape[i] != x.Shape[i] && y.Shape[i] != 1)
                throw new TensorShapeException($"ReduceSum: cannot reduce {x.Shape} to {y.Shape}");
        var xs = Load(x);
        var ys = new double[y.Numel];
        var yStrides = new long[x.Rank];
        var contiguous = Shape.ContiguousStrides(y.Shape.Dims);
        for (int i = 0; i < x.Rank; i++) yStrides[i] = y.Shape[i] == 1 ? 0 : contiguous[i];
        long k = 0;
        foreach (long at in Offsets(new Shape(x.Shape.ToArray(), yStrides), 0)) ys[at] += xs[k++];
        Store(y, ys);
    }

    private static void RequireSameDims(string op, Tensor a, Tensor b)
    {
        if (!a.Shape.SameDims(b.Shape)) throw new TensorShapeException($"{op}: {a.Shape} vs {b.Shape}");
    }
}
