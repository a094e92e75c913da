using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Cli.Selftest;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Tests;

/// <summary>The selftest's bound for dense matmuls with BF16 inputs (<see cref="Bf16Rounding.DotBound"/>), checked where
/// it can run without a GPU: the product of operands rounded to BF16 (by the reference backend's own conversion) stays
/// within it (and uses a measurable part of it), while positive operands truncated to 6 significant bits (errors up to
/// 2⁻⁵ of one sign, which cannot cancel) break it.</summary>
public sealed class Bf16BoundTests
{
    private static readonly Device Ref = new(new ReferenceBackend());

    private static float[] Values(int seed, int count)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>y = x·wᵀ in fp32 (accumulated in double, then rounded: well inside the fp32 term of the bound).</summary>
    private static double[] Product(float[] x, float[] w, int rows, int k, int m)
    {
        using var scope = new TensorScope();
        return Ops.Linear(Tensor.FromArray(Ref, x, rows, k), Tensor.FromArray(Ref, w, m, k)).ToArray<float>().Select(v => (double)v).ToArray();
    }

    private static float[] RoundBf16(float[] values)
    {
        using var t = Tensor.FromArray(Ref, values, values.Length);
        using var b = t.Cast(DType.BF16);
        return b.ToArray<float>();
    }

    /// <summary>Truncates positive values to <paramref name="bits"/> significant bits (a coarser format than BF16's 8,
    /// rounded toward zero).</summary>
    private static float[] TruncateBits(float[] values, int bits) => values.Select(v =>
    {
        int e = (int)Math.Floor(Math.Log2(v)) + 1 - bits;
        return (float)(Math.Floor(v / Math.Pow(2, e)) * Math.Pow(2, e));
    }).ToArray();

    [Theory]
    [InlineData(3, 64, 5)]
    [InlineData(4, 512, 7)]
    public void Bf16OperandsStayWithinTheBoundAndCoarserOnesDoNot(int rows, int k, int m)
    {
        var x = Values(1 + k, rows * k);
        var w = Values(2 + k, m * k);
        var exact = Product(x, w, rows, k, m);

        var bx = RoundBf16(x);
        var bw = RoundBf16(w);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(bx[i] - x[i]) <= Math.Abs(x[i]) * Bf16Rounding.UnitRoundoff, "BF16 rounding within 2⁻⁸");
        double share = Bf16Checks.WorstShareOfDotBound(Product(bx, bw, rows, k, m), exact, x, w, rows, k, m);
        Assert.InRange(share, 1e-3, 1.0);

        var px = x.Select(v => 0.5f + Math.Abs(v) / 2).ToArray();
        var pw = w.Select(v => 0.5f + Math.Abs(v) / 2).ToArray();
        var positive = Product(px, pw, rows, k, m);
        Assert.InRange(Bf16Checks.WorstShareOfDotBound(Product(RoundBf16(px), RoundBf16(pw), rows, k, m), positive, px, pw, rows, k, m), 0, 1.0);
        double coarse = Bf16Checks.WorstShareOfDotBound(Product(TruncateBits(px, 6), TruncateBits(pw, 6), rows, k, m), positive, px, pw, rows, k, m);
        Assert.True(coarse > 1, $"6-bit truncated operands stayed within the BF16 bound ({coarse:g3} of it): the bound does not discriminate");
    }

    [Fact]
    public void TheBoundIsTwoRoundingsPerProductPlusTheFp32Sums()
    {
        // (2u + u²) from the two operands, γ₂·(1 + u)² + γ₂ from the fp32 products and sums (k = 1: n = 2 roundings)
        double g = 2.0 / 16777216 / (1 - 2.0 / 16777216);
        Assert.Equal(2.0 / 256 + 1.0 / 65536 + g * (1 + 1.0 / 256) * (1 + 1.0 / 256) + g, Bf16Rounding.DotBound(1, 1), 15);
        Assert.True(Bf16Rounding.DotBound(1, 4096) > Bf16Rounding.DotBound(1, 64));
        Assert.Throws<ArgumentOutOfRangeException>(() => Bf16Rounding.F32SumFactor(1 << 24));
    }
}

/// <summary>The KV cache type as a config value: the pipeline's kv_cache enum reads "f32" and "bf16" and names a bad value;
/// the RL configs check their string the same way.</summary>
public sealed class KvCacheConfigTests
{
    [Theory]
    [InlineData("f32", Llama.KvCacheType.F32)]
    [InlineData("bf16", Llama.KvCacheType.BF16)]
    public void PipelineConfigReadsTheCacheType(string value, Llama.KvCacheType expected)
    {
        var options = ConfigLoader.Load(new Rlhf.Pipeline.PipelineOptions(), null, [$"kv_cache={value}"]);
        Assert.Equal(expected, options.KvCache);
        Assert.Contains($"\"kv_cache\": \"{value}\"", ConfigLoader.Describe(options));
    }

    [Fact]
    public void ABadCacheTypeIsNamed()
    {
        var e = Assert.ThrowsAny<Exception>(() => ConfigLoader.Load(new Rlhf.Pipeline.PipelineOptions(), null, ["kv_cache=f16"]));
        Assert.Contains("kv_cache", e.Message);
        var rl = new Stages.EvalConfig { KvCache = "BF16 " };
        Assert.Equal(Llama.KvCacheType.BF16, rl.KvCacheStorage());
        Assert.Contains("config: 'kv_cache': unknown KV cache type 'q4'", Assert.Throws<CliException>(() => (rl with { KvCache = "q4" }).KvCacheStorage()).Message);
    }
}
