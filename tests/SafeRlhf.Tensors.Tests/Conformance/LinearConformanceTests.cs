using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>MatMul (every transpose and accumulate form, batched, with strided and broadcast operands), the AdamW step and
/// the sum of squares of clipping, each written once and run on every backend against <see cref="Oracle"/>.</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class LinearConformanceTests
{
    /// <summary>(batch, M, N, K): empty in each dimension, one element, odd sizes, a batch of three.</summary>
    private static readonly (int Batch, int M, int N, int K)[] MatMulShapes =
        [(1, 0, 5, 7), (1, 3, 0, 4), (1, 4, 6, 0), (1, 1, 1, 1), (2, 17, 19, 23), (3, 5, 33, 9)];

    public static TheoryData<string, bool, bool, bool> MatMulCases()
    {
        var data = new TheoryData<string, bool, bool, bool>();
        foreach (var b in BackendNames)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    foreach (bool acc in new[] { false, true }) data.Add(b, ta, tb, acc);
        return data;
    }

    [Theory]
    [MemberData(nameof(MatMulCases))]
    public void MatMulInEveryTransposeAndAccumulateForm(string backend, bool transA, bool transB, bool accumulate)
    {
        var d = Device(backend);
        foreach (var (batch, m, n, k) in MatMulShapes)
        {
            using var scope = new TensorScope();
            var a = Values32(50, batch * m * k);
            var b = Values32(51, batch * k * n);
            var c0 = Values32(52, batch * m * n);
            var c = Make(d, c0, batch, m, n);
            d.Backend.MatMul(Make(d, a, transA ? [batch, k, m] : [batch, m, k]), Make(d, b, transB ? [batch, n, k] : [batch, k, n]),
                c, transA, transB, accumulate);
            AssertClose(Oracle.MatMul(a, b, accumulate ? c0 : null, batch, m, n, k, transA, transB), c,
                $"matmul b{batch} m{m} n{n} k{k} tA={transA} tB={transB} acc={accumulate}", 1e-5 * Math.Sqrt(k + 1), 1e-5);
        }
    }

    /// <summary>b one matrix broadcast over the batch (stride 0), the product of a linear layer without a copy.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void MatMulReadsABroadcastBatchOperand(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var a = Values32(53, 3 * 7 * 9);
        var b = Values32(54, 9 * 5);                                          // [1, 9, 5] broadcast to [3, 9, 5]
        var c = Tensor.Zeros(d, DType.F32, 3, 7, 5);
        d.Backend.MatMul(Make(d, a, 3, 7, 9), Make(d, b, 1, 9, 5).Expand(3, 9, 5), c, false, false, false);
        AssertClose(Oracle.MatMul(a, [.. b, .. b, .. b], null, 3, 7, 5, 9, false, false), c, "matmul, broadcast b", 1e-5, 1e-5);
    }

    /// <summary>An operand that is a transposed view: the reference and ILGPU read it in place; native takes packed
    /// matrices only (the transpose flags express a transposed operand) and says so.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void MatMulOfATransposedView(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var a = Values32(55, 2 * 6 * 7);                                      // [2, 6, 7], read as [2, 7, 6]
        var b = Values32(56, 2 * 6 * 5);
        var c = Tensor.Zeros(d, DType.F32, 2, 7, 5);
        void Run() => d.Backend.MatMul(Make(d, a, 2, 6, 7).Transpose(1, 2), Make(d, b, 2, 6, 5), c, false, false, false);
        if (backend == "native")
        {
            Assert.Contains("strided", Assert.Throws<BackendNotSupportedException>(Run).Message);
            return;
        }
        Run();
        AssertClose(Oracle.MatMul(a, b, null, 2, 7, 5, 6, transA: true, transB: false), c, "matmul of a transposed view", 1e-5, 1e-5);
    }

    /// <summary>BF16 and F64 operands into an F64 product: the reference and ILGPU stage them; native runs F32 only and
    /// says so.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void MatMulOfOtherDTypes(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var a = Values(58, 3 * 4).Select(v => (double)BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits((float)v) & 0xFFFF0000)).ToArray();
        var b = Values(59, 4 * 5);                                            // a holds bf16 values, b doubles
        var at = Tensor.Zeros(d, DType.BF16, 1, 3, 4);
        var bt = Tensor.Zeros(d, DType.F64, 1, 4, 5);
        d.Backend.Copy(Make(d, a, 1, 3, 4), at);
        d.Backend.Copy(Tensor.FromArray(d, b, 1, 4, 5), bt);
        var c = Tensor.Zeros(d, DType.F64, 1, 3, 5);
        if (backend == "native")
        {
            Assert.Contains("F64", Assert.Throws<BackendNotSupportedException>(() => d.Backend.MatMul(at, bt, c, false, false, false)).Message);
            return;
        }
        d.Backend.MatMul(at, bt, c, false, false, false);
        AssertClose(Oracle.MatMul(a, b, null, 1, 3, 5, 4, false, false), c, "matmul bf16 · f64", 1e-5, 1e-5);
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void AdamWSteps(string backend)
    {
        var d = Device(backend);
        foreach (int n in new[] { 0, 1, 31, 53 })
        {
            using var scope = new TensorScope();
            var (ep, em, ev) = (Values32(55, n), new double[n], new double[n]);
            var (p, m, v) = (Make(d, ep, n), Tensor.Zeros(d, DType.F32, n), Tensor.Zeros(d, DType.F32, n));
            for (int step = 1; step <= 3; step++)
            {
                var g = Values32(57 + (ulong)step, n, -0.1, 0.1);
                d.Backend.AdamW(p, Make(d, g, n), m, v, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
                (ep, em, ev) = Oracle.AdamW(ep, g, em, ev, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
                (ep, em, ev) = (F32(ep), F32(em), F32(ev));                  // the state is held in F32 between steps
            }
            AssertClose(ep, p, $"adamw param n{n}", 1e-6, 1e-5);
            AssertClose(em, m, $"adamw m n{n}", 1e-7, 1e-5);
            AssertClose(ev, v, $"adamw v n{n}", 1e-9, 1e-5);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void AdamWRejectsStepZero(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var t = Tensor.Zeros(d, DType.F32, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Backend.AdamW(t, t, t, t, 1e-3, 0.9, 0.95, 1e-8, 0, 0));
    }

    /// <summary>Σ x² over shapes across the 16-lane width and the GPU's per-group partial sums; the GPU sums in fp32.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void SumOfSquares(string backend)
    {
        var d = Device(backend);
        foreach (var dims in (int[][])[[0], [1], [17], [3, 77], [2, 3, 65]])
        {
            using var scope = new TensorScope();
            var x = Values32(60, Numel(dims));
            AssertClose([x.Sum(v => v * v)], [d.Backend.SumOfSquares(Make(d, x, dims))], $"sum of squares {string.Join("x", dims)}", 0, 1e-6);
        }
    }
}
