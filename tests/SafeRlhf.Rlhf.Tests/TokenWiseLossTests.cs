using SafeRlhf.Rlhf.Losses;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Rlhf.Tests.Oracles;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The token-wise reward/cost loss against a plain loop over positions, and its gradients.</summary>
public sealed class TokenWiseLossTests
{
    private static readonly int[][] High = [[1, 4, 5, 6, 2], [1, 7, 2]];
    private static readonly int[][] Low = [[1, 4, 9, 2], [1, 7, 8, 8, 8, 2]];

    [Fact]
    public void SpansRunFromTheFirstDifferenceToTheLongerEnd()
    {
        var (start, end) = ScoreTrainer.TokenWiseSpans(High, Low, [4, 2, 3, 5]);
        Assert.Equal(new[] { 2, 2 }, start);
        Assert.Equal(new[] { 4, 5 }, end);
        Assert.Throws<InvalidDataException>(() => ScoreTrainer.TokenWiseSpans([[1, 2]], [[1, 2]], [1, 1]));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MatchesALoopOverPositions(bool costSigns)
    {
        var rng = new Rng(3);
        const int N = 2, L = 6;
        var h = Enumerable.Range(0, N * L).Select(_ => rng.Uniform(-2, 2)).ToArray();
        var l = Enumerable.Range(0, N * L).Select(_ => rng.Uniform(-2, 2)).ToArray();
        int[] start = [2, 1], end = [4, 5];
        double[] kh = [1, -1], kl = [-1, -1];
        double[] hEnd = [h[0 * L + 4], h[1 * L + 2]], lEnd = [l[0 * L + 3], l[1 * L + 5]];
        const double reg = 0.01;

        double expected = 0;
        for (int i = 0; i < N; i++)
        {
            double sum = 0;
            for (int t = start[i]; t <= end[i]; t++)
            {
                sum -= Sigmoid.Log(h[i * L + t] - l[i * L + t]);
                if (costSigns) sum -= Sigmoid.Log(kh[i] * h[i * L + t]) + Sigmoid.Log(kl[i] * l[i * L + t]);
            }
            expected += sum / (end[i] - start[i] + 1);
        }
        expected = expected / N + reg * (hEnd.Concat(lEnd).Sum(x => x * x) / (2 * N));

        var dev = TestDevices.Reference;
        var loss = ScorePairLosses.TokenWise(Tensor.FromArray(dev, h, N, L), Tensor.FromArray(dev, l, N, L), start, end,
            costSigns ? kh : null, costSigns ? kl : null, Tensor.FromArray(dev, hEnd, N), Tensor.FromArray(dev, lEnd, N), reg);
        Assert.Equal(expected, loss.Item(), 12);

        GradCheck.Check(dev, x => ScorePairLosses.TokenWise(x[0], x[1], start, end, costSigns ? kh : null, costSigns ? kl : null,
            x[0].Select(1, 3), x[1].Select(1, 2), reg), [GradCheck.Random(rng, N, L), GradCheck.Random(rng, N, L)]);
    }
}
