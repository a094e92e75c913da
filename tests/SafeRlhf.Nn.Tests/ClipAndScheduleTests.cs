using SafeRlhf.Tensors;
using static SafeRlhf.Nn.Tests.AdamWTests;

namespace SafeRlhf.Nn.Tests;

/// <summary>Global gradient-norm clipping and the learning-rate schedules, against values computed by hand.</summary>
public sealed class ClipAndScheduleTests
{
    [Theory]
    [MemberData(nameof(AdamWTests.Devices), MemberType = typeof(AdamWTests))]
    public void ClipScalesEveryGradientByOneGlobalFactor(string device)
    {
        var d = Dev(device);
        var t = Type(device);
        using var a = Make(d, t, [1, 2, 3, 4], 2, 2);
        using var b = Make(d, t, [0, 0], 2);
        a.RequiresGrad = b.RequiresGrad = true;
        using var opt = new AdamW([("a", a), ("b", b)], lr: 0.1);
        double[] ga = [3, 0, 0, 0], gb = [0, 4];                                   // global norm √(9 + 16) = 5
        SetGradients(d, t, (a, ga), (b, gb));

        Assert.Equal(5, opt.ClipGradNorm(maxNorm: 10), 6);                         // under the limit: unchanged
        AssertClose(ga, a.Grad!.ToDoubleArray(), 1e-7);
        Assert.Equal(5, opt.ClipGradNorm(maxNorm: 1), 6);                          // over: both scaled by 1 / (5 + 1e-6)
        double f = 1 / (5 + 1e-6);
        AssertClose([3 * f, 0, 0, 0], a.Grad!.ToDoubleArray(), 1e-7);
        AssertClose([0, 4 * f], b.Grad!.ToDoubleArray(), 1e-7);
        Assert.Equal(1, opt.ClipGradNorm(maxNorm: 1), 5);
    }

    [Fact]
    public void ConstantScheduleWarmsUpLinearlyThenHolds()
    {
        Assert.Equal([0.25, 0.5, 0.75, 1, 1, 1], Enumerable.Range(0, 6).Select(s => LrSchedule.Constant(1, s, warmupSteps: 4)));
        Assert.Equal(0.3, LrSchedule.Constant(0.3, 0, warmupSteps: 0));
    }

    [Fact]
    public void CosineScheduleWarmsUpThenFallsToZeroThroughHalf()
    {
        // 2 warmup steps, then 8 decay steps: progress (step − 2) / 8.
        Assert.Equal(1, LrSchedule.Cosine(2, 0, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(2, LrSchedule.Cosine(2, 1, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(2, LrSchedule.Cosine(2, 2, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(1, LrSchedule.Cosine(2, 6, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(2 * 0.5 * (1 + Math.Cos(Math.PI * 3 / 8)), LrSchedule.Cosine(2, 5, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(0, LrSchedule.Cosine(2, 10, totalSteps: 10, warmupSteps: 2), 12);
        Assert.Equal(0, LrSchedule.Cosine(2, 50, totalSteps: 10, warmupSteps: 2), 12);   // past the end: held at 0
    }
}
