using SafeRlhf.Rlhf.Math;
using SafeRlhf.Rlhf.Tests.Oracles;

namespace SafeRlhf.Rlhf.Tests;

public sealed class LagrangeMultiplierTests
{
    [Fact]
    public void UpdateIsOneSgdStepOnLogLambda()
    {
        var m = new LagrangeMultiplier(lambdaInit: 2.0, learningRate: 0.1, threshold: 0.5, lambdaMax: null, windowSize: 8);
        m.AddEpisodeCosts([1.0, 2.0, 3.0]);
        double before = m.LogLambda;
        double jc = m.Update();
        Assert.Equal(2.0, jc, 15);
        Assert.Equal(before + 0.1 * 2.0 * (2.0 - 0.5), m.LogLambda, 15);
        Assert.Equal(System.Math.Exp(m.LogLambda), m.Lambda, 15);
    }

    [Fact]
    public void LambdaFallsWhenCostIsBelowThreshold()
    {
        var m = new LagrangeMultiplier(lambdaInit: 1.0, learningRate: 0.5, threshold: 0.0);
        m.AddEpisodeCosts([-1.0, -3.0]);
        m.Update();
        Assert.True(m.Lambda < 1.0);
        Assert.True(m.Lambda > 0.0);
    }

    [Fact]
    public void LambdaIsClampedAtLambdaMax()
    {
        var m = new LagrangeMultiplier(lambdaInit: 4.0, learningRate: 1.0, threshold: 0.0, lambdaMax: 5.0);
        m.AddEpisodeCosts([10.0]);
        for (int i = 0; i < 3; i++)
        {
            m.Update();
            Assert.Equal(System.Math.Log(5.0), m.LogLambda, 15);
            Assert.Equal(5.0, m.Lambda, 12);
        }
        // Once the cost drops below the threshold it moves down from the bound.
        m.AddEpisodeCosts(Enumerable.Repeat(-10.0, LagrangeMultiplier.DefaultWindowSize));
        m.Update();
        Assert.True(m.Lambda < 5.0);
    }

    [Fact]
    public void InitialLambdaAboveMaxIsClamped()
    {
        var m = new LagrangeMultiplier(lambdaInit: 9.0, lambdaMax: 5.0);
        Assert.Equal(5.0, m.Lambda, 12);
    }

    [Fact]
    public void WindowKeepsTheMostRecentCosts()
    {
        var m = new LagrangeMultiplier(windowSize: 3);
        m.AddEpisodeCosts([1.0, 2.0]);
        Assert.Equal([1.0, 2.0], m.Window);
        m.AddEpisodeCosts([3.0, 4.0, 5.0]);
        Assert.Equal([3.0, 4.0, 5.0], m.Window);
        Assert.Equal(4.0, m.EpisodeCostMean, 15);
        m.AddEpisodeCosts([6.0]);
        Assert.Equal([4.0, 5.0, 6.0], m.Window);
        Assert.Equal(5.0, m.EpisodeCostMean, 15);
    }

    [Fact]
    public void UpdateWithoutCostsThrows()
    {
        var m = new LagrangeMultiplier();
        Assert.Throws<InvalidOperationException>(() => m.Update());
    }

    [Fact]
    public void InvalidSettingsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LagrangeMultiplier(lambdaInit: 0.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LagrangeMultiplier(lambdaMax: -1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LagrangeMultiplier(windowSize: 0));
        Assert.Throws<ArgumentException>(() => new LagrangeMultiplier().AddEpisodeCosts([double.NaN]));
    }

    [Fact]
    public void RestoredMultiplierContinuesLikeTheOriginal()
    {
        var original = new LagrangeMultiplier(lambdaInit: 1.5, learningRate: 0.2, threshold: -0.5, lambdaMax: 5.0, windowSize: 4);
        original.AddEpisodeCosts([0.3, 1.2, -0.4, 0.9, 2.0]);
        original.Update();

        var restored = new LagrangeMultiplier(lambdaInit: 1.0, learningRate: 0.2, threshold: -0.5, lambdaMax: 5.0, windowSize: 4);
        restored.Restore(original.LogLambda, original.Window);
        Assert.Equal(original.Window, restored.Window);
        Assert.Equal(original.LogLambda, restored.LogLambda);

        foreach (var costs in new[] { new[] { 1.0, -2.0 }, new[] { -3.0 } })
        {
            original.AddEpisodeCosts(costs);
            restored.AddEpisodeCosts(costs);
            Assert.Equal(original.Update(), restored.Update());
            Assert.Equal(original.LogLambda, restored.LogLambda);
        }
    }

    [Fact]
    public void RestoreRejectsAStateTheMultiplierCannotHold()
    {
        var m = new LagrangeMultiplier(lambdaInit: 1.0, learningRate: 0.1, threshold: 0.0, lambdaMax: 5.0, windowSize: 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Restore(System.Math.Log(6.0), []));
        Assert.Throws<ArgumentOutOfRangeException>(() => m.Restore(double.NaN, []));
        Assert.Throws<ArgumentException>(() => m.Restore(0.0, [1.0, 2.0, 3.0]));
    }
}
