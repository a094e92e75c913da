using SafeRlhf.TestSupport;
using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>Quantize, Dequantize and QuantizedMatMul (forward and backward) for every weight storage IBackend accepts (Q8_0,
/// Q4_0, BF16, Q4_K, Q5_K, Q6_K), written once and run on every backend. Expected bytes come from the quantizers of
/// <see cref="QuantOracle"/>, expected values from its independent block model and double products.</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class QuantizedConformanceTests
{
    private static readonly DType[] WeightTypes = [DType.Q8_0, DType.Q4_0, DType.BF16, DType.Q4_K, DType.Q5_K, DType.Q6_K];

    public static TheoryData<string, DType> Cases(DType[] types)
    {
        var data = new TheoryData<string, DType>();
        foreach (var b in BackendNames) foreach (var t in types) data.Add(b, t);
        return data;
    }

    public static TheoryData<string, DType> WeightCases() => Cases(WeightTypes);
    public static TheoryData<string, DType> BlockCases() => Cases([DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K]);
    public static TheoryData<string, DType> QuantizeCases() => Cases([DType.Q8_0, DType.Q4_0]);

    /// <summary>Values with zeros, an all-zero block (d = 0), a dominant negative value and exact halves (rounding ties).</summary>
    private static float[] ToQuantize(int n)
    {
        var x = Array.ConvertAll(Values(70, n, -3, 3), v => (float)v);
        for (int i = 0; i < n; i += 97) x[i] = 0;
        if (n >= 64) Array.Fill(x, 0f, 32, 32);
        if (n >= 96) x[70] = -x[70] * 40;
        if (n >= 128) for (int j = 96; j < 128; j++) x[j] = (j - 112) * 0.5f;
        return x;
    }

    [Theory]
    [MemberData(nameof(QuantizeCases))]
    public void QuantizeWritesTheGgmlBlocks(string backend, DType dtype)
    {
        var d = Device(backend);
        foreach (var (rows, k) in new[] { (0, 32), (1, 32), (3, 64), (2, 160) })
        {
            using var scope = new TensorScope();
            var x = ToQuantize(rows * k);
            var q = Tensor.Zeros(d, dtype, rows, k);
            d.Backend.Quantize(Tensor.FromArray(d, x, rows, k), q);
            Assert.Equal(dtype == DType.Q8_0 ? GgmlQuantizers.QuantizeQ8(x) : GgmlQuantizers.QuantizeQ4(x), q.ToBytes());
        }
    }

    /// <summary>K-quant weights are read from files only: quantizing to them fails on every backend.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void QuantizeToAKQuantFails(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var q = Tensor.Zeros(d, DType.Q4_K, 1, 256);
        var e = Assert.Throws<TensorDTypeException>(() => d.Backend.Quantize(Make(d, Values(71, 256), 1, 256), q));
        Assert.Contains("Q4_K is read from files only", e.Message);
    }

    [Theory]
    [MemberData(nameof(BlockCases))]
    public void DequantizeReadsTheBlockLayout(string backend, DType dtype)
    {
        var d = Device(backend);
        int block = dtype.BlockElements();
        foreach (var (rows, blocks) in new[] { (0, 1), (1, 1), (3, 2) })
        {
            using var scope = new TensorScope();
            var bytes = QuantOracle.RandomWeight(new Rng(72 + (ulong)dtype), dtype, rows, blocks * block);
            var x = Tensor.Zeros(d, DType.F32, rows, blocks * block);
            d.Backend.Dequantize(Tensor.FromBytes(d, dtype, bytes, rows, blocks * block), x);
            AssertClose(QuantOracle.WeightValues(dtype, bytes), x, $"dequantize {dtype} {rows}x{blocks * block}", 0, 0);
        }
    }

    /// <summary>(N, M, weight blocks along K): empty N and M, one element row, decode-sized N, N = 9 and N = 17 (the ILGPU
    /// backend's batched GEMV takes up to 15 rows, its GEMM 16 or more), N = 33 (the native column-lane GEMM takes 32
    /// rows or more), odd M.
    /// BF16 takes 15 columns for a "block" so that K is odd.</summary>
    private static readonly (int N, int M, int Blocks)[] MatMulShapes = [(0, 5, 1), (2, 0, 1), (1, 1, 1), (1, 7, 2), (3, 13, 3), (9, 6, 2), (17, 5, 1), (33, 18, 3)];

    /// <summary>|a|·|b| summed like the product: the scale of its fp32 rounding error.</summary>
    private static double Magnitude(double[] a, double[] b, int m, int n, int k, bool transB) =>
        Oracle.MatMul(Array.ConvertAll(a, Math.Abs), Array.ConvertAll(b, Math.Abs), null, 1, m, n, k, false, transB).DefaultIfEmpty(0).Max();

    [Theory]
    [MemberData(nameof(WeightCases))]
    public void QuantizedMatMulAndItsBackward(string backend, DType dtype)
    {
        var d = Device(backend);
        int block = dtype == DType.BF16 ? 15 : dtype.BlockElements();
        foreach (var (n, m, blocks) in MatMulShapes)
        {
            using var scope = new TensorScope();
            int k = blocks * block;
            string what = $"{dtype} N{n} M{m} K{k}";
            var rng = new Rng(73 + (ulong)(n * 31 + m * 7 + k));
            var bytes = QuantOracle.RandomWeight(rng, dtype, m, k);
            var w = QuantOracle.WeightValues(dtype, bytes);                     // [M, K]
            var wt = Tensor.FromBytes(d, dtype, bytes, m, k);
            var x = QuantOracle.OnTheQ8Grid(rng, n, k);                        // [N, K]
            var y = Tensor.Zeros(d, DType.F32, n, m);
            d.Backend.QuantizedMatMul(Make(d, x, n, k), wt, y);
            AssertClose(Oracle.MatMul(x, w, null, 1, n, m, k, false, true), y, $"{what} y",
                2e-6 * Math.Sqrt(k) * Magnitude(x, w, n, m, k, transB: true) + 1e-30, 1e-5);

            var dy = Values32(74, n * m);                                       // [N, M]
            var dx = Tensor.Zeros(d, DType.F32, n, k);
            d.Backend.QuantizedMatMulBackward(Make(d, dy, n, m), wt, dx);
            AssertClose(Oracle.MatMul(dy, w, null, 1, n, k, m, false, false), dx, $"{what} dx",
                2e-6 * Math.Sqrt(m + 1) * Magnitude(dy, w, n, k, m, transB: false) + 1e-30, 1e-5);
        }
    }
}
