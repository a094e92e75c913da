namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class AdamWTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void ThreeStepsMatchReference()
    {
        int n = 53;
        var p = Pair(Random(1, n), n);
        var m = Zeros(n);
        var v = Zeros(n);
        for (int step = 1; step <= 3; step++)
        {
            var g = Pair(Random(10 + step, n), n);
            G.AdamW(p.Gpu, g.Gpu, m.Gpu, v.Gpu, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
            R.AdamW(p.Ref, g.Ref, m.Ref, v.Ref, 1e-2, 0.9, 0.95, 1e-8, 0.1, step);
        }
        AssertClose(p, 1e-5, 1e-5, "param");
        AssertClose(m, 1e-6, 1e-5, "m");
        AssertClose(v, 1e-6, 1e-5, "v");
    }

    /// <summary>The squared gradient norm of clipping.</summary>
    [Fact]
    public void SumOfSquaresMatchesReference()
    {
        var x = Pair(Random(19, 3 * 77), 3, 77);
        double expected = R.SumOfSquares(x.Ref);
        Assert.True(Math.Abs(G.SumOfSquares(x.Gpu) - expected) <= 1e-5 * expected, "sum of squares");
    }
}
