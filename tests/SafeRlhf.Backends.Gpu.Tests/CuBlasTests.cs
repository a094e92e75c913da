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
}
