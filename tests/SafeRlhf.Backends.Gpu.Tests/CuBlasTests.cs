using SafeRlhf.Backends.Gpu.CuBlas;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>cuBLAS without a GPU: a missing library is a typed error naming every file tried, the engine is never
/// chosen silently, and the row-major → column-major argument mapping reproduces the row-major product.</summary>
public sealed class CuBlasTests
{
    [Fact]
    public void AMissingLibraryIsATypedErrorNamingTheFiles()
    {
        var e = Assert.Throws<CuBlasUnavailableException>(() => CuBlasLibrary.Load(["libcublas-does-not-exist.so.99", "nor-this.so"]));
        Assert.Contains("libcublas-does-not-exist.so.99, nor-this.so", e.Message);
        Assert.Contains("GemmEngine.Ilgpu", e.Message);
    }

    [Fact]
    public void TheCpuAcceleratorRefusesTheCuBlasEngine()
    {
        var e = Assert.Throws<NotSupportedException>(() => GpuBackend.CreateCpu(groupSize: 16, gemm: GemmEngine.CuBlas));
        Assert.Contains("cuBLAS", e.Message);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void TheColumnMajorCallComputesTheRowMajorProduct(bool transA, bool transB)
    {
        const int m = 5, n = 7, k = 3, batch = 2;
        var rng = new Random(3);
        float[] Fill(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        // stored row-major with padded rows (row stride = columns + 2) to exercise the leading dimensions
        int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
        int aLd = aCols + 2, bLd = bCols + 2, cLd = n + 2;
        var a = Fill(batch * aRows * aLd);
        var b = Fill(batch * bRows * bLd);
        var c = new float[batch * m * cLd];
        var g = GemmMapping.RowMajor(m, n, k, batch, transA, transB, aLd, aRows * aLd, bLd, bRows * bLd, cLd, m * cLd);
        g.Reference(b, a, c); // cuBLAS's first operand is our B
        for (int p = 0; p < batch; p++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double expected = 0;
                    for (int l = 0; l < k; l++)
                    {
                        float av = transA ? a[p * aRows * aLd + l * aLd + i] : a[p * aRows * aLd + i * aLd + l];
                        float bv = transB ? b[p * bRows * bLd + j * bLd + l] : b[p * bRows * bLd + l * bLd + j];
                        expected += (double)av * bv;
                    }
                    Assert.Equal((float)expected, c[p * m * cLd + i * cLd + j], 5);
                }
    }

    /// <summary>The quantized products' mappings (the scratch route's cublasGemmEx calls) reproduce y = x·Wᵀ and
    /// dx = dy·W from contiguous row-major operands, and satisfy cuBLAS's argument rules.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheQuantizedMatMulMappingsComputeTheRowMajorProducts(bool backward)
    {
        const int n = 17, m = 6, k = 64;
        var rng = new Random(5);
        float[] Fill(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var w = Fill(m * k);                                   // [M, K]
        var a = Fill(n * (backward ? m : k));                  // x [N, K] or dy [N, M]
        int cols = backward ? k : m;
        var c = new float[n * cols];
        var g = backward ? GemmMapping.QuantizedMatMulBackward(n, m, k) : GemmMapping.QuantizedMatMul(n, m, k);
        g.Validate();
        Assert.Equal(1, g.Batch);
        g.Reference(w, a, c); // cuBLAS's first operand is the weight
        for (int i = 0; i < n; i++)
            for (int j = 0; j < cols; j++)
            {
                double expected = 0;
                if (backward) for (int l = 0; l < m; l++) expected += (double)a[i * m + l] * w[l * k + j];
                else for (int l = 0; l < k; l++) expected += (double)a[i * k + l] * w[j * k + l];
                Assert.Equal((float)expected, c[i * cols + j], 5);
            }
    }

    /// <summary>A batch stride of 0 broadcasts an operand across the batch (one weight for every batch entry).</summary>
    [Fact]
    public void AZeroBatchStrideBroadcastsAnOperand()
    {
        const int m = 3, n = 4, k = 5, batch = 3;
        var rng = new Random(9);
        float[] Fill(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var a = Fill(batch * m * k);
        var b = Fill(n * k);                                   // one [N, K] operand, used transposed by every entry
        var c = new float[batch * m * n];
        var g = GemmMapping.RowMajor(m, n, k, batch, false, true, k, m * k, k, 0, n, m * n);
        g.Validate();
        g.Reference(b, a, c);
        for (int p = 0; p < batch; p++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double expected = 0;
                    for (int l = 0; l < k; l++) expected += (double)a[p * m * k + i * k + l] * b[j * k + l];
                    Assert.Equal((float)expected, c[p * m * n + i * n + j], 5);
                }
    }

    [Fact]
    public void LeadingDimensionsBelowCuBlasRulesAreRefusedBeforeTheCall()
    {
        var ok = GemmMapping.QuantizedMatMul(8, 6, 32);
        var e = Assert.Throws<ArgumentException>(() => (ok with { Lda = 31 }).Validate());
        Assert.Contains("lda ≥ 32", e.Message);
        Assert.Throws<ArgumentException>(() => (ok with { Ldc = 5 }).Validate());
        Assert.Throws<ArgumentException>(() => (ok with { Batch = 0 }).Validate());
        // a product over an empty inner axis still passes leading dimensions of at least 1
        GemmMapping.RowMajor(2, 3, 0, 1, false, false, 0, 0, 3, 0, 3, 0).Validate();
    }

    [Theory]
    [InlineData(CuBlasLibrary.R32F, CuBlasLibrary.R32F, CuBlasLibrary.Compute32FFastTf32, true)]
    [InlineData(CuBlasLibrary.R32F, CuBlasLibrary.R32F, CuBlasLibrary.Compute32F, true)]
    [InlineData(CuBlasLibrary.R16BF, CuBlasLibrary.R16BF, CuBlasLibrary.Compute32F, true)]
    [InlineData(CuBlasLibrary.R16BF, CuBlasLibrary.R16BF, CuBlasLibrary.Compute32FFastTf32, false)]
    [InlineData(CuBlasLibrary.R16BF, CuBlasLibrary.R32F, CuBlasLibrary.Compute32F, false)]
    public void OnlyMatchingInputTypesReachCuBlas(int aType, int bType, int compute, bool accepted)
    {
        if (accepted) CuBlasLibrary.CheckTypes(aType, bType, compute);
        else Assert.Throws<ArgumentException>(() => CuBlasLibrary.CheckTypes(aType, bType, compute));
    }

    /// <summary>BF16 operands exist only on the cuBLAS engine: asking the ILGPU engine for them fails before any device
    /// is looked for (so on every machine), and the default stays fp32.</summary>
    [Fact]
    public void BF16InputsNeedTheCuBlasEngine()
    {
        var e = Assert.Throws<NotSupportedException>(() => GpuBackend.CreateCuda(gemm: GemmEngine.Ilgpu, inputs: MatMulInputs.BF16));
        Assert.Contains("GemmEngine.CuBlas", e.Message);
        GpuBackend.CheckEngine(GemmEngine.CuBlas, MatMulInputs.BF16);
        GpuBackend.CheckEngine(GemmEngine.Ilgpu, MatMulInputs.F32);
        using var cpu = GpuBackend.CreateCpu(groupSize: 4);
        Assert.Equal(MatMulInputs.F32, cpu.Inputs);
    }
}
