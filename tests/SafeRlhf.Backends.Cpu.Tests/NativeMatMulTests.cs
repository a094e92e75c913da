using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;
using NativeBackendType = SafeRlhf.Backends.Cpu.Native.NativeBackend;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The packed fp32 GEMM against the reference MatMul at sizes around the micro-tile (12×32 / 6×16) and cache-block
/// edges, in every transpose and accumulate form, and its independence of the thread count. Every backend's MatMul at
/// empty, tiny and odd sizes and over broadcast operands is in the conformance suite of SafeRlhf.Tensors.Tests.</summary>
public sealed class NativeMatMulTests
{
    public static TheoryData<int, int, int, int> Sizes() => new()
    {
        { 2, 1, 33, 17 }, { 3, 13, 1, 31 }, { 1, 12, 32, 16 }, { 1, 13, 33, 65 }, { 2, 25, 47, 130 }, { 1, 97, 70, 513 }, { 1, 200, 3100, 9 },
        { 1, 193, 65, 600 }, { 4, 37, 29, 23 },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void MatchesReferenceForEveryTransposeCombination(int batch, int m, int n, int k)
    {
        var rng = new Rng((ulong)(batch * 1000003 + m * 1009 + n * 31 + k));
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                foreach (bool accumulate in new[] { false, true })
                {
                    int[] aDims = transA ? [batch, k, m] : [batch, m, k];
                    int[] bDims = transB ? [batch, n, k] : [batch, k, n];
                    var av = Random(rng, (long)batch * m * k);
                    var bv = Random(rng, (long)batch * k * n);
                    var cv = Random(rng, (long)batch * m * n);
                    var results = new Tensor[2];
                    int slot = 0;
                    foreach (var dev in new[] { ReferenceDevice, NativeDevice })
                    {
                        using var a = On(dev, av, aDims);
                        using var b = On(dev, bv, bDims);
                        var c = On(dev, cv, batch, m, n);
                        dev.Backend.MatMul(a, b, c, transA, transB, accumulate);
                        results[slot++] = c;
                    }
                    Close(results[0], results[1], 1e-5 * Math.Sqrt(k + 1), 1e-5,
                        $"MatMul b{batch} m{m} n{n} k{k} tA{transA} tB{transB} acc{accumulate}");
                    results[0].Dispose();
                    results[1].Dispose();
                }
    }

    [Fact]
    public void LlamaProjectionShapeMatchesReference()
    {
        // A reduced q-projection: [tokens, dim] · [dim, dim]ᵀ with dim not a multiple of the blocks.
        var rng = new Rng(11);
        int tokens = 40, dim = 520;
        var xv = Random(rng, tokens * dim);
        var wv = Random(rng, dim * dim);
        var results = new Tensor[2];
        int slot = 0;
        foreach (var dev in new[] { ReferenceDevice, NativeDevice })
        {
            using var x = On(dev, xv, 1, tokens, dim);
            using var w = On(dev, wv, 1, dim, dim);
            var y = Zeros(dev, 1, tokens, dim);
            dev.Backend.MatMul(x, w, y, false, true, false);
            results[slot++] = y;
        }
        Close(results[0], results[1], 1e-4, 1e-5, "x·wᵀ");
    }

    [Fact]
    public void ThreadCountDoesNotChangeTheResult()
    {
        var rng = new Rng(8);
        int m = 150, n = 140, k = 300;
        var av = Random(rng, m * k);
        var bv = Random(rng, k * n);
        float[] Run(int threads)
        {
            try
            {
                NativeBackendType.Threads = threads;
                using var a = On(NativeDevice, av, 1, m, k);
                using var b = On(NativeDevice, bv, 1, k, n);
                using var c = Zeros(NativeDevice, 1, m, n);
                NativeDevice.Backend.MatMul(a, b, c, false, false, false);
                return c.ToFloatArray();
            }
            finally { NativeBackendType.Threads = 0; }
        }
        var one = Run(1);
        var two = Run(2);
        for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], two[i], 1e-4f);
    }
}
