using SafeRlhf.Llama;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>On-device sampling against the host <see cref="Sampler"/>: the same seed gives the same tokens for
/// greedy, temperature and top-p sampling (ties included), and skipped rows draw nothing.</summary>
public sealed class SamplingTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    private const int Rows = 6, Vocab = 50;

    /// <summary>Logits with repeated values (ties) and a spread that makes the nucleus neither 1 nor V tokens.</summary>
    private static float[] Logits(int seed)
    {
        var data = Random(seed, Rows * Vocab, 3f);
        for (int r = 0; r < Rows; r++)
        {
            data[r * Vocab + 7] = data[r * Vocab + 3];
            data[r * Vocab + 40] = data[r * Vocab + 3];
        }
        data[2 * Vocab + 11] = data[2 * Vocab + 12] = 9f; // a tie for the maximum: greedy takes the lower id
        return data;
    }

    private static int[] Host(float[] logits, SamplingOptions options, bool[] active)
    {
        var sampler = new Sampler(options);
        var tokens = new int[Rows];
        for (int r = 0; r < Rows; r++)
            tokens[r] = active[r] ? sampler.Next(logits.AsSpan(r * Vocab, Vocab).ToArray().Select(v => (double)v).ToArray()) : -1;
        return tokens;
    }

    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.7, 1.0)]
    [InlineData(1.0, 0.9)]
    [InlineData(1.3, 0.5)]
    [InlineData(0.5, 0.95)]
    [InlineData(2.0, 0.05)]
    public void TheDeviceDrawsTheHostSamplersTokens(double temperature, double topP)
    {
        var distinct = new HashSet<int>();
        for (int seed = 1; seed <= 12; seed++)
        {
            var logits = Logits(seed);
            var options = new SamplingOptions { Temperature = temperature, TopP = topP, Seed = (ulong)seed };
            bool[] active = [true, true, true, seed % 2 == 0, true, true];
            var expected = Host(logits, options, active);
            using var t = Tensor.FromArray(Gpu, logits, Rows, 1, Vocab);
            var sampler = new Sampler(options);
            var actual = sampler.NextRows(t, active);
            Assert.Equal(expected, actual);
            foreach (int id in actual) distinct.Add(id);
        }
        if (temperature == 0) Assert.Contains(11, distinct);
        else Assert.True(distinct.Count > 3, $"only {distinct.Count} distinct tokens over 12 seeds");
    }

    [Fact]
    public void TheRandomStreamAdvancesOncePerSampledRow()
    {
        var logits = Logits(3);
        var options = new SamplingOptions { Temperature = 1.0, TopP = 0.8, Seed = 5 };
        bool[] active = [true, false, true, false, true, true];
        var device = new Sampler(options);
        var host = new Sampler(options);
        using var t = Tensor.FromArray(Gpu, logits, Rows, Vocab);
        var d = device.NextRows(t, active);
        Assert.Equal(Host(logits, options, active), d);
        Assert.Equal(-1, d[1]);
        for (int i = 0; i < 4; i++) host.Rng.NextDouble();
        Assert.Equal(host.Rng.NextDouble(), device.Rng.NextDouble());
    }

    [Fact]
    public void SamplingReadsBackOnlyTheIds()
    {
        using var t = Tensor.FromArray(Gpu, Logits(4), Rows, Vocab);
        var before = Fixture.Backend.Activity;
        new Sampler(new SamplingOptions { Temperature = 0.9, TopP = 0.9, Seed = 2 }).NextRows(t);
        var a = Fixture.Backend.Activity - before;
        Assert.Equal(1, a.Synchronizations);
        Assert.Equal(1, a.Readbacks);
    }
}
