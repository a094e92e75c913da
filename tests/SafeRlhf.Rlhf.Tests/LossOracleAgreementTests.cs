using SafeRlhf.Rlhf.Losses;
using SafeRlhf.Rlhf.Tests.Oracles;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using Oracle = SafeRlhf.Rlhf.Tests.Oracles;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>Each tensor loss of src (what the trainers optimise) agrees with its double-precision oracle on random
/// inputs, including the edge case of a row without any valid position: that row is left out of the masked mean by
/// both, and a mask without any valid position is refused by both.</summary>
public sealed class LossOracleAgreementTests
{
    private static readonly Device Dev = TestDevices.Reference;

    private static double[,] Random(Rng rng, int rows, int cols)
    {
        var m = new double[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) m[i, j] = rng.Uniform(-1.5, 1.5);
        return m;
    }

    private static Tensor ToTensor(double[,] x)
    {
        var flat = new double[x.Length];
        Buffer.BlockCopy(x, 0, flat, 0, flat.Length * sizeof(double));
        return PolicyOps.FromValues(Dev, DType.F64, flat, x.GetLength(0), x.GetLength(1));
    }

    private static Tensor ToTensor(double[] x) => PolicyOps.FromValues(Dev, DType.F64, x, x.Length);

    // Row 1 has no valid position.
    private static readonly bool[,] MaskWithEmptyRow =
        { { true, true, false, true }, { false, false, false, false }, { false, true, true, true } };

    [Fact]
    public void MaskedMeanLeavesOutARowWithoutValidPositionsInBoth()
    {
        var x = Random(new Rng(3), 3, 4);
        double oracle = Oracle.MaskedMean.Compute(x, MaskWithEmptyRow);
        double tensor = PpoLosses.MaskedMean(ToTensor(x), MaskWithEmptyRow).Item();
        Assert.True(double.IsFinite(tensor), $"tensor masked mean is {tensor}");
        Assert.Equal(oracle, tensor, 12);
        Assert.Equal(((x[0, 0] + x[0, 1] + x[0, 3]) / 3 + (x[2, 1] + x[2, 2] + x[2, 3]) / 3) / 2, oracle, 12);
    }

    [Fact]
    public void AMaskWithoutAnyValidPositionIsRefusedByBoth()
    {
        var x = Random(new Rng(4), 2, 3);
        var none = new bool[2, 3];
        Assert.Throws<ArgumentException>(() => Oracle.MaskedMean.Compute(x, none));
        Assert.Throws<ArgumentException>(() => PpoLosses.MaskedMean(ToTensor(x), none));
    }

    [Fact]
    public void ActorAndCriticLossesAgreeWithTheirOraclesWithAnEmptyRow()
    {
        var rng = new Rng(5);
        var (logp, old, adv) = (Random(rng, 3, 4), Random(rng, 3, 4), Random(rng, 3, 4));
        Assert.Equal(PpoActorLoss.Compute(logp, old, adv, MaskWithEmptyRow, 0.2),
            PpoLosses.ActorLoss(ToTensor(logp), old, adv, MaskWithEmptyRow, 0.2).Item(), 12);
        var (values, oldValues, returns) = (Random(rng, 3, 4), Random(rng, 3, 4), Random(rng, 3, 4));
        Assert.Equal(CriticLoss.Compute(values, oldValues, returns, MaskWithEmptyRow, 0.3),
            PpoLosses.CriticLoss(ToTensor(values), oldValues, returns, MaskWithEmptyRow, 0.3).Item(), 12);
    }

    [Fact]
    public void PairLossesAgreeWithTheirOracles()
    {
        var rng = new Rng(6);
        double[] V(int n) => Enumerable.Range(0, n).Select(_ => rng.Uniform(-2, 2)).ToArray();
        var (better, worse) = (V(5), V(5));
        Assert.Equal(RewardModelLoss.Compute(better, worse, 0.01).Loss,
            ScorePairLosses.SequenceWise(ToTensor(better), ToTensor(worse), null, null, 0.01).Item(), 12);

        var (safer, unsafer) = (V(5), V(5));
        bool[] saferSafe = [true, true, false, true, false], unsaferSafe = [false, true, false, false, false];
        int[] ks = saferSafe.Select(CostModelLoss.CostSign).ToArray(), ku = unsaferSafe.Select(CostModelLoss.CostSign).ToArray();
        Assert.Equal(CostModelLoss.Compute(safer, unsafer, ks, ku, 0.01).Loss,
            ScorePairLosses.SequenceWise(ToTensor(unsafer), ToTensor(safer), ku.Select(k => (double)k).ToArray(),
                ks.Select(k => (double)k).ToArray(), 0.01).Item(), 12);

        var (pc, pr, rc, rr) = (V(4), V(4), V(4), V(4));
        var (loss, accuracy) = Losses.DpoLoss.Compute(ToTensor([.. pc, .. pr]), ToTensor([.. rc, .. rr]), 0.5);
        var expected = Oracle.DpoLoss.Compute(pc, pr, rc, rr, 0.5);
        Assert.Equal(expected.Loss, loss.Item(), 12);
        Assert.Equal(expected.Accuracy, accuracy);
    }
}
