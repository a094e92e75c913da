using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>Unary (forward and backward), Binary with broadcast views, Where and ReduceSum: each written once and run on every
/// backend against the naive double formula.</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class ElementwiseConformanceTests
{
    public static TheoryData<string, UnaryOp> UnaryCases()
    {
        var data = new TheoryData<string, UnaryOp>();
        foreach (var b in BackendNames) foreach (var op in Enum.GetValues<UnaryOp>()) data.Add(b, op);
        return data;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    private static double Forward(UnaryOp op, double x, double a, double b) => op switch
    {
        UnaryOp.Neg => -x, UnaryOp.Exp => Math.Exp(x), UnaryOp.Log => Math.Log(x), UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1 / Math.Sqrt(x), UnaryOp.Silu => x * Sigmoid(x), UnaryOp.Sigmoid => Sigmoid(x),
        UnaryOp.LogSigmoid => -Math.Log(1 + Math.Exp(-x)), UnaryOp.Square => x * x, UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Scale => a * x, UnaryOp.AddScalar => x + a, UnaryOp.Clamp => Math.Min(Math.Max(x, a), b),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    private static double Derivative(UnaryOp op, double x, double a, double b) => op switch
    {
        UnaryOp.Neg => -1, UnaryOp.Exp => Math.Exp(x), UnaryOp.Log => 1 / x, UnaryOp.Sqrt => 0.5 / Math.Sqrt(x),
        UnaryOp.Rsqrt => -0.5 * Math.Pow(x, -1.5), UnaryOp.Silu => Sigmoid(x) + x * Sigmoid(x) * (1 - Sigmoid(x)),
        UnaryOp.Sigmoid => Sigmoid(x) * (1 - Sigmoid(x)), UnaryOp.LogSigmoid => 1 - Sigmoid(x), UnaryOp.Square => 2 * x,
        UnaryOp.Abs => Math.Sign(x), UnaryOp.Scale => a, UnaryOp.AddScalar => 1, UnaryOp.Clamp => x >= a && x <= b ? 1 : 0,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    [Theory]
    [MemberData(nameof(UnaryCases))]
    public void UnaryAndItsBackward(string backend, UnaryOp op)
    {
        var d = Device(backend);
        const double a = 0.5, b = 1.25;
        bool positive = op is UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt;
        foreach (var dims in Shapes)
        {
            using var scope = new TensorScope();
            long n = Numel(dims);
            var xs = Values(1, n, positive ? 0.2 : -3, 3);
            var gs = Values(2, n);
            var x = Make(d, xs, dims);
            var y = Tensor.Zeros(d, DType.F32, dims);
            d.Backend.Unary(op, x, y, a, b);
            AssertClose(xs.Select(v => Forward(op, (float)v, a, b)).ToArray(), y, $"{op} {string.Join("x", dims)}", 1e-5, 1e-5);
            var dy = Make(d, gs, dims);
            var dx = Tensor.Zeros(d, DType.F32, dims);
            d.Backend.UnaryBackward(op, x, y, dy, dx, a, b);
            AssertClose(xs.Zip(gs, (v, g) => (float)g * Derivative(op, (float)v, a, b)).ToArray(), dx, $"d{op} {string.Join("x", dims)}", 1e-4, 1e-4);
        }
    }

    public static TheoryData<string, BinaryOp> BinaryCases()
    {
        var data = new TheoryData<string, BinaryOp>();
        foreach (var b in BackendNames) foreach (var op in Enum.GetValues<BinaryOp>()) data.Add(b, op);
        return data;
    }

    private static double Apply(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b, BinaryOp.Sub => a - b, BinaryOp.Mul => a * b, BinaryOp.Div => a / b,
        BinaryOp.Minimum => Math.Min(a, b), BinaryOp.Maximum => Math.Max(a, b), BinaryOp.Less => a < b ? 1 : 0,
        BinaryOp.LessEqual => a <= b ? 1 : 0, BinaryOp.Greater => a > b ? 1 : 0, BinaryOp.GreaterEqual => a >= b ? 1 : 0,
        BinaryOp.Equal => a == b ? 1 : 0, _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>The element of a row-major [dims] array at the broadcast position of flat index k of [outDims].</summary>
    private static double At(double[] values, int[] dims, int[] outDims, long k)
    {
        long at = 0, stride = 1, rest = k;
        var index = new long[outDims.Length];
        for (int i = outDims.Length - 1; i >= 0; i--) { index[i] = rest % outDims[i]; rest /= outDims[i]; }
        for (int i = dims.Length - 1, o = outDims.Length - 1; i >= 0; i--, o--)
        {
            at += (dims[i] == 1 ? 0 : index[o]) * stride;
            stride *= dims[i];
        }
        return values[at];
    }

    private static int[] Broadcast(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var dims = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)], db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            dims[i] = da == 1 ? db : da;
        }
        return dims;
    }

    [Theory]
    [MemberData(nameof(BinaryCases))]
    public void BinaryOverBroadcastViews(string backend, BinaryOp op)
    {
        var d = Device(backend);
        foreach (var (aDims, bDims) in BroadcastPairs)
        {
            using var scope = new TensorScope();
            var dims = Broadcast(aDims, bDims);
            var av = Values(3, Numel(aDims), halves: true);
            var bv = Values(4, Numel(bDims), halves: true).Select(v => v == 0 ? 0.5 : v).ToArray();
            var c = Tensor.Zeros(d, DType.F32, dims);
            d.Backend.Binary(op, Make(d, av, aDims).Expand(dims), Make(d, bv, bDims).Expand(dims), c);
            var expected = Enumerable.Range(0, (int)Numel(dims)).Select(k => Apply(op, At(av, aDims, dims, k), At(bv, bDims, dims, k))).ToArray();
            AssertClose(expected, c, $"{op} {string.Join("x", aDims)} ∘ {string.Join("x", bDims)}", 1e-6, 1e-6);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void WhereOverBroadcastViews(string backend)
    {
        var d = Device(backend);
        foreach (var (aDims, bDims) in BroadcastPairs)
        {
            using var scope = new TensorScope();
            var dims = Broadcast(aDims, bDims);
            var cv = Values(5, Numel(dims)).Select(v => v > 0 ? 1.0 : 0.0).ToArray();
            var av = Values(6, Numel(aDims));
            var bv = Values(7, Numel(bDims));
            var y = Tensor.Zeros(d, DType.F32, dims);
            d.Backend.Where(Make(d, cv, dims), Make(d, av, aDims).Expand(dims), Make(d, bv, bDims).Expand(dims), y);
            var expected = Enumerable.Range(0, (int)Numel(dims)).Select(k => cv[k] != 0 ? At(av, aDims, dims, k) : At(bv, bDims, dims, k)).ToArray();
            AssertClose(expected.Select(v => (double)(float)v).ToArray(), y, "where", 0, 0);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void ReduceSumOverAnyAxes(string backend)
    {
        var d = Device(backend);
        (int[] X, int[] Y)[] cases = [([4, 5, 6], [1, 5, 1]), ([4, 5, 6], [4, 1, 6]), ([4, 5, 6], [1, 1, 1]), ([3, 40], [3, 1]),
            ([3, 4], [3, 4]), ([0, 3], [1, 3]), ([3, 0], [3, 1]), ([37], [1])];
        foreach (var (xDims, yDims) in cases)
        {
            using var scope = new TensorScope();
            var xs = Values(8, Numel(xDims));
            var y = Tensor.Zeros(d, DType.F32, yDims);
            d.Backend.ReduceSum(Make(d, xs, xDims), y);
            var expected = new double[Numel(yDims)];
            for (long k = 0; k < xs.Length; k++)
            {
                long rest = k, at = 0, stride = 1;
                for (int i = xDims.Length - 1; i >= 0; i--)
                {
                    long idx = rest % xDims[i];
                    rest /= xDims[i];
                    at += (yDims[i] == 1 ? 0 : idx) * stride;
                    stride *= yDims[i];
                }
                expected[at] += (float)xs[k];
            }
            AssertClose(expected, y, $"sum {string.Join("x", xDims)} → {string.Join("x", yDims)}", 1e-5, 1e-5);
        }
    }
}
