using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>The quantized products' routes on the ILGPU backend against the reference backend: the batched GEMV for
/// fewer than 16 activation rows, the in-tile GEMM from 16 rows, and the cuBLAS engine's route (the weight dequantized
/// into the backend's scratch, then the dense GEMM) run with the hand-written GEMM in cuBLAS's place.</summary>
public sealed class QuantizedMatMulTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    public static readonly TheoryData<DType> BlockTypes = new(DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K);

    /// <summary>Stored bytes of an [m, k] weight: random quants and small finite fp16 scales (every scale slot of the
    /// block layout: Q8_0/Q4_0 d at byte 0, Q4_K/Q5_K d and dmin at 0 and 2, Q6_K d at 208).</summary>
    private static byte[] RandomWeight(int seed, DType dtype, int m, int k)
    {
        var rng = new System.Random(seed);
        int size = dtype.BlockBytes(), blocks = m * k / dtype.BlockElements();
        var data = new byte[blocks * size];
        rng.NextBytes(data);
        int[] halves = dtype switch { DType.Q6_K => [208], DType.Q4_K or DType.Q5_K => [0, 2], _ => [0] };
        for (int b = 0; b < blocks; b++)
            foreach (int at in halves)
                BitConverter.TryWriteBytes(data.AsSpan(b * size + at, 2), BitConverter.HalfToUInt16Bits((Half)(rng.NextDouble() * 0.04 - 0.02)));
        return data;
    }

    private (Tensor Gpu, Tensor Ref) Weight(int seed, DType dtype, int m, int k)
    {
        var bytes = RandomWeight(seed, dtype, m, k);
        return (Tensor.FromBytes(Gpu, dtype, bytes, m, k), Tensor.FromBytes(Ref, dtype, bytes, m, k));
    }

    /// <summary>max over outputs of Σ |a|·|b| for c [rows, cols] = a [rows, inner] · b, b read at b(l, j) = b[l·bl + j·bj]:
    /// the scale of an fp32 product's rounding error.</summary>
    private static double Magnitude(float[] a, float[] b, int rows, int cols, int inner, int bl, int bj)
    {
        double max = 0;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
            {
                double sum = 0;
                for (int l = 0; l < inner; l++) sum += Math.Abs((double)a[i * inner + l] * b[l * bl + j * bj]);
                max = Math.Max(max, sum);
            }
        return max;
    }

    /// <summary>y = x·Wᵀ and dx = dy·W on both backends, within fp32 summation error of the reference; what the GPU
    /// forward did on the device (launches, host waits).</summary>
    private DeviceActivity CompareForwardAndBackward(DType dtype, int n, int m, int k, string route)
    {
        using var scope = new TensorScope();
        var w = Weight(100 + n, dtype, m, k);
        var wv = Tensor.Zeros(Ref, DType.F32, m, k);
        R.Dequantize(w.Ref, wv);
        var values = wv.ToArray<float>();                         // [M, K]
        var xs = Random(200 + n, (long)n * k);
        var x = Pair(xs, n, k);
        var y = Zeros(n, m);
        var before = Fixture.Backend.Activity;
        G.QuantizedMatMul(x.Gpu, w.Gpu, y.Gpu);
        var activity = Fixture.Backend.Activity - before;
        R.QuantizedMatMul(x.Ref, w.Ref, y.Ref);
        AssertClose(y, 2e-6 * Math.Sqrt(k) * Magnitude(xs, values, n, m, k, 1, k) + 1e-30, 1e-5, $"{route} {dtype} N{n} M{m} K{k} y");
        var dys = Random(300 + n, (long)n * m);
        var dy = Pair(dys, n, m);
        var dx = Zeros(n, k);
        G.QuantizedMatMulBackward(dy.Gpu, w.Gpu, dx.Gpu);
        R.QuantizedMatMulBackward(dy.Ref, w.Ref, dx.Ref);
        AssertClose(dx, 2e-6 * Math.Sqrt(m + 1) * Magnitude(dys, values, n, k, m, k, 1) + 1e-30, 1e-5, $"{route} {dtype} N{n} M{m} K{k} dx");
        return activity;
    }

    [Theory]
    [MemberData(nameof(BlockTypes))]
    public void TheDequantizeKernelIsBitExact(DType dtype)
    {
        using var scope = new TensorScope();
        int m = 3, k = 2 * dtype.BlockElements();
        var w = Weight(11, dtype, m, k);
        var x = Zeros(m, k);
        G.Dequantize(w.Gpu, x.Gpu);
        R.Dequantize(w.Ref, x.Ref);
        var g = x.Gpu.ToArray<float>();
        var r = x.Ref.ToArray<float>();
        for (int i = 0; i < r.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(r[i]) == BitConverter.SingleToUInt32Bits(g[i]), $"{dtype}[{i}]: gpu {g[i]} vs reference {r[i]}");
    }

    /// <summary>Why the scratch is fp32: some dequantized weights of every block type need more than BF16's 8
    /// significant bits (fp16 scale × integer): their fp32 value has nonzero low 16 bits, which BF16 drops.</summary>
    [Theory]
    [MemberData(nameof(BlockTypes))]
    public void BF16WouldRoundDequantizedWeights(DType dtype)
    {
        using var scope = new TensorScope();
        int m = 4, k = 2 * dtype.BlockElements();
        var w = Tensor.FromBytes(Ref, dtype, RandomWeight(12, dtype, m, k), m, k);
        var x = Tensor.Zeros(Ref, DType.F32, m, k);
        R.Dequantize(w, x);
        var values = x.ToArray<float>();
        int inexact = values.Count(v => (BitConverter.SingleToUInt32Bits(v) & 0xFFFF) != 0);
        Assert.True(inexact > 0, $"{dtype}: every dequantized weight fits BF16");
    }

    [Theory]
    [MemberData(nameof(BlockTypes))]
    public void TheBatchedGemvTakesUpTo15Rows(DType dtype)
    {
        Assert.Equal(15, GpuBackend.QuantizedGemvMaxRows);
        int k = 2 * dtype.BlockElements();
        foreach (int n in new[] { 1, 3, 4, 5, 8, 15 })
            Assert.Equal(1, CompareForwardAndBackward(dtype, n, 9, k, "gemv").Launches);
    }

    [Theory]
    [MemberData(nameof(BlockTypes))]
    public void SixteenRowsTakeTheInTileGemm(DType dtype) =>
        Assert.Equal(1, CompareForwardAndBackward(dtype, 16, 9, 2 * dtype.BlockElements(), "in-tile gemm").Launches);

    /// <summary>The cuBLAS engine's route with the ILGPU GEMM: from 16 rows the weight is dequantized into the scratch
    /// (grown to the largest matrix, kept) and multiplied by the dense GEMM; fewer rows still take the GEMV.</summary>
    [Theory]
    [MemberData(nameof(BlockTypes))]
    public void TheScratchRouteMatchesTheReference(DType dtype)
    {
        var backend = Fixture.Backend;
        Assert.False(backend.UseWeightScratch);
        backend.ScratchOnIlgpu = true;
        try
        {
            int k = 3 * dtype.BlockElements(), m = 11;
            long start = backend.WeightScratchFloats;
            Assert.Equal(1, CompareForwardAndBackward(dtype, 15, m, k, "scratch gemv").Launches);
            Assert.Equal(start, backend.WeightScratchFloats);
            foreach (int n in new[] { 16, 21 })
                Assert.Equal(2, CompareForwardAndBackward(dtype, n, m, k, "scratch gemm").Launches);
            Assert.True(backend.WeightScratchFloats >= (long)m * k, $"scratch holds {backend.WeightScratchFloats} floats, needs {m * k}");
            long grown = backend.WeightScratchFloats;
            // a weight that fits the scratch reuses it without waiting for the device
            var reuse = CompareForwardAndBackward(dtype, 17, 2, k, "scratch gemm, smaller weight");
            Assert.Equal(grown, backend.WeightScratchFloats);
            Assert.Equal((2L, 0L), (reuse.Launches, reuse.Synchronizations));
        }
        finally
        {
            backend.ScratchOnIlgpu = false;
        }
    }
}
