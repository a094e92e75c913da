using SafeRlhf.Backends.Cpu;
using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Tensors.Tests;

/// <summary>The ownership rules of docs/MEMORY.md, checked with a device whose memory pool is its own, so the
/// live-byte counter sees only this test's tensors.</summary>
public sealed class LifetimeTests
{
    private const int N = 1000;
    private const long Bytes = N * sizeof(double);

    private static (Device Dev, Tensor X) Setup()
    {
        var dev = new Device(new ReferenceBackend(new CpuAllocator()));
        var x = Tensor.FromArray(dev, Enumerable.Range(0, N).Select(i => i / (double)N).ToArray(), N);
        x.RequiresGrad = true;
        return (dev, x);
    }

    private static long Live(Device dev) => dev.Backend.Memory.LiveBytes;

    [Fact]
    public void AScopeUnderNoGradFreesEveryTemporary()
    {
        var (dev, x) = Setup();
        using (GradMode.NoGrad())
        using (new TensorScope())
        {
            var y = (x * x).Exp().Sum();
            Assert.True(Live(dev) > Bytes);
            Assert.True(y.Item() > 0);
        }
        Assert.Equal(Bytes, Live(dev));
    }

    [Fact]
    public void BackwardFreesSavedActivationsAndConsumedGradients()
    {
        var (dev, x) = Setup();
        using (new TensorScope())
        {
            Tensor loss;
            using (var inner = new TensorScope()) loss = inner.Keep((x * x).Exp().Sum());
            // The inner scope has ended, but the tape still holds what Mul and Exp's rules read.
            Assert.True(Live(dev) > Bytes + 3 * sizeof(double));
            loss.Backward();
            // Left: x, x.Grad, the loss and the backward seed (one element each).
            Assert.Equal(2 * Bytes + 2 * sizeof(double), Live(dev));
        }
        var xs = x.ToDoubleArray();
        var g = x.Grad!.ToDoubleArray();
        for (int i = 0; i < N; i++) Assert.Equal(2 * xs[i] * Math.Exp(xs[i] * xs[i]), g[i], 12);
        Assert.Equal(2 * Bytes, Live(dev));
    }

    [Fact]
    public void ATensorARuleNeedsOutlivesItsOwnerUntilTheRuleRuns()
    {
        var (_, x) = Setup();
        using var scope = new TensorScope();
        var a = x * x;
        var b = a.Exp();
        a.Dispose();
        Assert.False(a.Storage.IsReleased);               // Exp's rule reads a's data
        b.Sum().Backward();
        Assert.True(a.Storage.IsReleased);                // …and let go of it once it had run
        Assert.NotNull(x.Grad);
    }

    [Fact]
    public void TheOutermostScopeDropsAGraphWhoseBackwardNeverRan()
    {
        var (dev, x) = Setup();
        using (new TensorScope())
        {
            using (var inner = new TensorScope()) inner.Keep((x * x).Exp().Sum());
            Assert.True(Live(dev) > Bytes + sizeof(double));
        }
        Assert.Equal(Bytes, Live(dev));
    }

    [Fact]
    public void AFrozenWeightsInputIsNotSavedByMatMul()
    {
        var dev = new Device(new ReferenceBackend(new CpuAllocator()));
        var w = Tensor.FromArray(dev, new double[64 * 64], 64, 64);
        var x = Tensor.FromArray(dev, new double[64 * 64], 64, 64);
        x.RequiresGrad = true;                            // dx needs w only; w needs no gradient
        using var scope = new TensorScope();
        using (var inner = new TensorScope())
        {
            var h = x + x;                                // Add's rule reads nothing, so only MatMul could keep h
            inner.Keep(Ops.Linear(h, w));
        }
        // x, w and the output: h died with the inner scope.
        Assert.Equal(3 * 64 * 64 * sizeof(double), Live(dev));
    }
}
