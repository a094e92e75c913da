using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class RmsNormTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Theory]
    [InlineData(1, 8)]
    [InlineData(5, 37)]
    [InlineData(3, 130)]
    public void ForwardAndBackwardMatchReference(int rows, int dim)
    {
        var x = Pair(Random(1, (long)rows * dim, 2f), rows, dim);
        var w = Pair(Random(2, dim), dim);
        var y = Zeros(rows, dim);
        var rstd = Zeros(rows);
        G.RmsNorm(x.Gpu, w.Gpu, y.Gpu, rstd.Gpu, 1e-5);
        R.RmsNorm(x.Ref, w.Ref, y.Ref, rstd.Ref, 1e-5);
        AssertClose(y, 1e-5, 1e-4, "y");
        AssertClose(rstd, 1e-5, 1e-4, "rstd");

        var dy = Pair(Random(3, (long)rows * dim), rows, dim);
        var dx = Zeros(rows, dim);
        var dw = Pair(Random(4, dim), dim); // accumulated into
        G.RmsNormBackward(x.Gpu, w.Gpu, rstd.Gpu, dy.Gpu, dx.Gpu, dw.Gpu);
        R.RmsNormBackward(x.Ref, w.Ref, rstd.Ref, dy.Ref, dx.Ref, dw.Ref);
        AssertClose(dx, 1e-4, 1e-4, "dx");
        AssertClose(dw, 1e-4, 1e-4, "dw");
    }
}
