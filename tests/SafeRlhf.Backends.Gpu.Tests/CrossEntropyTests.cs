using SafeRlhf.Tensors;
namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class CrossEntropyTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void ForwardAndBackwardMatchReferenceWithIgnoredRows()
    {
        int n = 6, v = 45;
        var logits = Pair(Random(1, n * v, 5f), n, v);
        var targets = PairInt([3, -100, 44, 0, 17, -100], n);
        var losses = Zeros(n);
        var lse = Zeros(n);
        G.CrossEntropy(logits.Gpu, targets.Gpu, losses.Gpu, lse.Gpu, -100);
        R.CrossEntropy(logits.Ref, targets.Ref, losses.Ref, lse.Ref, -100);
        AssertClose(losses, 1e-5, 1e-5, "losses");
        AssertClose(lse, 1e-5, 1e-5, "lse");

        var dl = Pair(Random(2, n), n);
        var dLogits = Zeros(n, v);
        G.CrossEntropyBackward(logits.Gpu, targets.Gpu, lse.Gpu, dl.Gpu, dLogits.Gpu, -100);
        R.CrossEntropyBackward(logits.Ref, targets.Ref, lse.Ref, dl.Ref, dLogits.Ref, -100);
        AssertClose(dLogits, 1e-5, 1e-4, "dLogits");
    }

    [Fact]
    public void TargetOutOfRangeThrows()
    {
        var logits = Pair(Random(3, 2 * 5), 2, 5);
        var targets = PairInt([1, 5], 2);
        var losses = Zeros(2);
        var lse = Zeros(2);
        var e = Assert.Throws<TensorIndexException>(() => G.CrossEntropy(logits.Gpu, targets.Gpu, losses.Gpu, lse.Gpu, -100));
        Assert.Contains("row 1", e.Message);
    }
}
