using SafeRlhf.Rlhf.Math;
using SafeRlhf.Rlhf.Tests.Oracles;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>Edge cases and properties of the RL formulas (the golden test covers typical values).</summary>
public sealed class RlMathTests
{
    private static bool[,] Mask(params string[] rows)
    {
        var mask = new bool[rows.Length, rows[0].Length];
        for (int b = 0; b < rows.Length; b++)
            for (int t = 0; t < rows[b].Length; t++) mask[b, t] = rows[b][t] == '1';
        return mask;
    }

    private static double[,] Random(int rows, int length, int seed, double scale = 1.0)
    {
        var rng = new Random(seed);
        var x = new double[rows, length];
        for (int b = 0; b < rows; b++)
            for (int t = 0; t < length; t++) x[b, t] = scale * (2 * rng.NextDouble() - 1);
        return x;
    }

    [Fact]
    public void LogSigmoidIsStableAndMatchesTheDefinition()
    {
        foreach (double x in new[] { -30.0, -2.5, 0.0, 1.0, 30.0 })
            Assert.Equal(System.Math.Log(1 / (1 + System.Math.Exp(-x))), Sigmoid.Log(x), 12);
        Assert.Equal(-1000.0, Sigmoid.Log(-1000.0), 9);
        Assert.Equal(0.0, Sigmoid.Log(1000.0));
        Assert.Equal(0.5, Sigmoid.Value(0.0));
    }

    [Fact]
    public void MaskedMeanAveragesRowMeans()
    {
        double[,] x = { { 1, 2, 3, 100 }, { 4, 100, 100, 100 } };
        var mask = Mask("1110", "1000");
        Assert.Equal(((1 + 2 + 3) / 3.0 + 4) / 2, MaskedMean.Compute(x, mask), 15);
    }

    [Fact]
    public void MaskedMeanLeavesOutAllMaskedRows()
    {
        double[,] x = { { 1, 3 }, { 50, 60 }, { 5, 7 } };
        Assert.Equal((2.0 + 6.0) / 2, MaskedMean.Compute(x, Mask("11", "00", "11")), 15);
        Assert.Throws<ArgumentException>(() => MaskedMean.Compute(x, Mask("00", "00", "00")));
    }

    [Fact]
    public void EndIndicesAreTheLastValidPositions()
    {
        Assert.Equal([3, 1, 0], KlShapedSignals.EndIndices(Mask("1111", "1100", "1000")));
        var error = Assert.Throws<ArgumentException>(() => KlShapedSignals.EndIndices(Mask("11", "00")));
        Assert.Contains("row 1", error.Message);
    }

    [Fact]
    public void ShapedSignalsAddTheScoreAtTheEndAndClamp()
    {
        var oldLogProbs = Random(2, 5, 1);
        var refLogProbs = Random(2, 5, 2);
        var mask = Mask("11110", "11111");
        double[] score = { 3.0, -200.0 };
        var rewards = KlShapedSignals.Rewards(score, oldLogProbs, refLogProbs, mask, 0.1, 50.0);
        var costs = KlShapedSignals.Costs(score, oldLogProbs, refLogProbs, mask, 0.1, 50.0);
        for (int b = 0; b < 2; b++)
        {
            int end = b == 0 ? 3 : 4;
            for (int t = 0; t < 5; t++)
            {
                double kl = oldLogProbs[b, t] - refLogProbs[b, t];
                double r = -0.1 * kl + (t == end ? score[b] : 0);
                double c = 0.1 * kl + (t == end ? score[b] : 0);
                Assert.Equal(System.Math.Clamp(r, -50, 50), rewards[b, t], 14);
                Assert.Equal(System.Math.Clamp(c, -50, 50), costs[b, t], 14);
            }
        }
        Assert.Equal(-50.0, rewards[1, 4]);
        Assert.Equal(-50.0, costs[1, 4]);
    }

    [Fact]
    public void GaeEqualsTheDiscountedSumOfTdErrors()
    {
        var values = Random(3, 7, 3, 2.0);
        var signals = Random(3, 7, 4);
        var mask = Mask("1111111", "1111100", "1100000");
        const int start = 2;
        const double gamma = 0.9, lambda = 0.8;
        var (advantages, returns) = Gae.Compute(values, signals, mask, start, gamma, lambda);
        Assert.Equal(3, advantages.GetLength(0));
        Assert.Equal(7 - start, advantages.GetLength(1));

        for (int b = 0; b < 3; b++)
        {
            double V(int t) => t < 7 && mask[b, t] ? values[b, t] : 0.0;
            double S(int t) => mask[b, t] ? signals[b, t] : 0.0;
            for (int t = start; t < 7; t++)
            {
                double expected = 0;
                for (int k = t; k < 7; k++)
                    expected += System.Math.Pow(gamma * lambda, k - t) * (S(k) + gamma * V(k + 1) - V(k));
                Assert.Equal(expected, advantages[b, t - start], 12);
                Assert.Equal(expected + V(t), returns[b, t - start], 12);
            }
        }
    }

    [Fact]
    public void GaeIsZeroBeyondTheMaskAndTdAtLambdaZero()
    {
        var values = Random(1, 6, 5);
        var signals = Random(1, 6, 6);
        var mask = Mask("111100");
        var (advantages, _) = Gae.Compute(values, signals, mask, 0, 1.0, 0.0);
        Assert.Equal(0.0, advantages[0, 4]);
        Assert.Equal(0.0, advantages[0, 5]);
        Assert.Equal(signals[0, 3] - values[0, 3], advantages[0, 3], 15);
        Assert.Equal(signals[0, 1] + values[0, 2] - values[0, 1], advantages[0, 1], 15);
    }

    [Fact]
    public void CombinedAdvantageWeighsRewardAgainstCost()
    {
        double[,] ar = { { 2.0, -1.0 } };
        double[,] ac = { { 1.0, 3.0 } };
        var a0 = CombinedAdvantage.Compute(ar, ac, 0.0);
        Assert.Equal(ar, a0);
        var a = CombinedAdvantage.Compute(ar, ac, 3.0);
        Assert.Equal((2.0 - 3.0) / 4.0, a[0, 0], 15);
        Assert.Equal((-1.0 - 9.0) / 4.0, a[0, 1], 15);
        Assert.Throws<ArgumentOutOfRangeException>(() => CombinedAdvantage.Compute(ar, ac, -1.0));
    }

    [Fact]
    public void ActorLossClipsTheRatio()
    {
        // Positive advantage, ratio e^1 > 1.2: the clipped term 1.2·A is the minimum.
        double[,] logp = { { 1.0, 0.0 } };
        double[,] old = { { 0.0, 0.0 } };
        double[,] adv = { { 2.0, 5.0 } };
        var mask = Mask("10");
        Assert.Equal(-1.2 * 2.0, PpoActorLoss.Compute(logp, old, adv, mask, 0.2), 14);
        // Negative advantage, ratio e^1: min(A·ρ, A·1.2) = A·ρ (the unclipped, more pessimistic term).
        double[,] negative = { { -2.0, 5.0 } };
        Assert.Equal(2.0 * System.Math.E, PpoActorLoss.Compute(logp, old, negative, mask, 0.2), 13);
        // Ratio 1 gives −masked_mean(A).
        Assert.Equal(-3.5, PpoActorLoss.Compute(old, old, adv, Mask("11"), 0.2), 15);
    }

    [Fact]
    public void CriticLossTakesTheLargerOfClippedAndPlainError()
    {
        double[,] values = { { 10.0, 1.0 } };
        double[,] oldValues = { { 0.0, 0.0 } };
        double[,] returns = { { 12.0, 0.0 } };
        // Position 0: V_clip = 5 → (5 − 12)² = 49 > (10 − 12)² = 4. Position 1: both 1.
        Assert.Equal(0.5 * 49.0, CriticLoss.Compute(values, oldValues, returns, Mask("10"), 5.0), 14);
        Assert.Equal(0.5 * (49.0 + 1.0) / 2, CriticLoss.Compute(values, oldValues, returns, Mask("11"), 5.0), 14);
    }

    [Fact]
    public void RewardModelLossAndAccuracy()
    {
        var (loss, accuracy) = RewardModelLoss.Compute([1.0, -1.0], [0.0, 1.0], 0.0);
        Assert.Equal((-Sigmoid.Log(1.0) - Sigmoid.Log(-2.0)) / 2, loss, 14);
        Assert.Equal(0.5, accuracy);
        var (regularised, _) = RewardModelLoss.Compute([1.0, -1.0], [0.0, 1.0], 0.5);
        Assert.Equal(loss + 0.5 * (1 + 0 + 1 + 1) / 4.0, regularised, 14);
        Assert.Throws<ArgumentException>(() => RewardModelLoss.Compute([], [], 0.0));
    }

    [Fact]
    public void CostModelSignTermsFollowTheCostSign()
    {
        Assert.Equal(-1, CostModelLoss.CostSign(isSafe: true));
        Assert.Equal(+1, CostModelLoss.CostSign(isSafe: false));
        Assert.Equal(-CostModelLoss.SafetySign(true), CostModelLoss.CostSign(true));

        // Safe response scored −2, unsafe one scored +3: both signs right, ranking right.
        double[] safer = { -2.0 }, unsafer = { 3.0 };
        int[] ks = { CostModelLoss.CostSign(true) }, ku = { CostModelLoss.CostSign(false) };
        var (loss, ranking, sign) = CostModelLoss.Compute(safer, unsafer, ks, ku, 0.0);
        Assert.Equal(-Sigmoid.Log(5.0) - Sigmoid.Log(2.0) - Sigmoid.Log(3.0), loss, 14);
        Assert.Equal(1.0, ranking);
        Assert.Equal(1.0, sign);

        // Flipping the scores makes everything wrong and the loss larger.
        var (flipped, flippedRanking, flippedSign) = CostModelLoss.Compute(unsafer, safer, ks, ku, 0.0);
        Assert.True(flipped > loss);
        Assert.Equal(0.0, flippedRanking);
        Assert.Equal(0.0, flippedSign);
        Assert.Throws<ArgumentException>(() => CostModelLoss.Compute(safer, unsafer, [0], ku, 0.0));
    }

    [Fact]
    public void RewardShapingSubtractsScaledCost()
    {
        Assert.Equal([1.0 - 0.5 * 4.0, -2.0 + 0.5 * 2.0], RewardShaping.Compute([1.0, -2.0], [4.0, -2.0], 0.5));
    }

    [Fact]
    public void DpoLossIsLogTwoAtTheReferenceAndFallsWithTheMargin()
    {
        double[] zeros = { 0.0, 0.0 };
        var (atReference, _) = DpoLoss.Compute([-3.0, -1.0], [-2.0, -5.0], [-3.0, -1.0], [-2.0, -5.0], 0.1);
        Assert.Equal(System.Math.Log(2.0), atReference, 14);
        var (loss, accuracy) = DpoLoss.Compute([-1.0, -4.0], [-2.0, -1.0], zeros, zeros, 0.5);
        Assert.Equal((-Sigmoid.Log(0.5 * 1.0) - Sigmoid.Log(0.5 * -3.0)) / 2, loss, 14);
        Assert.Equal(0.5, accuracy);
        Assert.Throws<ArgumentOutOfRangeException>(() => DpoLoss.Compute(zeros, zeros, zeros, zeros, 0.0));
    }

    [Fact]
    public void ColumnsFromSlicesResponsePositions()
    {
        double[,] x = { { 0, 1, 2 }, { 3, 4, 5 } };
        Assert.Equal(new double[,] { { 1, 2 }, { 4, 5 } }, Batch.ColumnsFrom(x, 1));
        Assert.Equal(0, Batch.ColumnsFrom(x, 3).GetLength(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Batch.ColumnsFrom(x, 4));
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        var a = new double[2, 3];
        Assert.Throws<ArgumentException>(() => MaskedMean.Compute(a, new bool[2, 2]));
        Assert.Throws<ArgumentException>(() => Gae.Compute(a, new double[3, 3], new bool[2, 3], 0, 1, 1));
        Assert.Throws<ArgumentException>(() => CriticLoss.Compute(a, a, new double[2, 4], new bool[2, 3], 5));
    }
}
