using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Losses;

/// <summary>The PPO losses of the actor and the critics as differentiable tensor expressions (docs/SAFE_RLHF.md).
/// These are the definitions the trainers optimise; the tests hold double-precision oracles of the same formulas
/// and check both against the Safe-RLHF goldens. All arguments cover the response positions only
/// (columns [start:] of the full log-prob arrays).</summary>
public static class PpoLosses
{
    /// <summary>L = −masked_mean(min(A·ρ, A·clip(ρ, 1 ± ε))) with ρ = exp(logp − old_logp).
    /// logp [B, T] carries gradients; oldLogp [B, T], advantages [B, T], mask [B, T] are constants.</summary>
    public static Tensor ActorLoss(Tensor logp, double[,] oldLogp, double[,] advantages, bool[,] mask, double clipRange)
    {
        var ratio = (logp - Matrix(logp, oldLogp)).Exp();
        var a = Matrix(logp, advantages);
        var surrogate = Ops.Minimum(a * ratio, a * ratio.Clamp(1 - clipRange, 1 + clipRange));
        return MaskedMean(surrogate, mask).Neg();
    }

    /// <summary>L = 0.5·masked_mean(max((V − R)², (clip(V, V_old ± c) − R)²)).
    /// values [B, T] carry gradients; oldValues [B, T], returns [B, T], mask [B, T] are constants.</summary>
    public static Tensor CriticLoss(Tensor values, double[,] oldValues, double[,] returns, bool[,] mask, double clipRange)
    {
        var old = Matrix(values, oldValues);
        var r = Matrix(values, returns);
        var clipped = Ops.Minimum(Ops.Maximum(values, old - clipRange), old + clipRange);
        var loss = Ops.Maximum((values - r).Square(), (clipped - r).Square());
        return MaskedMean(loss, mask).Scale(0.5);
    }

    /// <summary>The PPO masked mean: the mean over rows of each row's mean over its valid positions,
    /// mean_b(Σ_t x[b,t]·m[b,t] / Σ_t m[b,t]). x [B, T], mask [B, T] → scalar.
    /// A row without a valid position has no mean (the reference divides 0 by 0 and gets NaN): such a row is left
    /// out of the mean over rows. A mask with no valid position at all throws <see cref="ArgumentException"/>.</summary>
    public static Tensor MaskedMean(Tensor x, bool[,] mask)
    {
        int rows = mask.GetLength(0), cols = mask.GetLength(1);
        if (x.Rank != 2 || x.Dim(0) != rows || x.Dim(1) != cols)
            throw new ArgumentException($"masked mean: x is {x.Shape}, the mask [{rows}, {cols}]", nameof(mask));
        var m = new double[rows, cols];
        var inverseCount = new double[rows, 1];
        int counted = 0;
        for (int i = 0; i < rows; i++)
        {
            int n = 0;
            for (int t = 0; t < cols; t++) if (mask[i, t]) { m[i, t] = 1; n++; }
            inverseCount[i, 0] = n == 0 ? 0.0 : 1.0 / n;
            if (n > 0) counted++;
        }
        if (counted == 0) throw new ArgumentException("masked mean: no row has a valid position", nameof(mask));
        var rowMeans = Ops.Mul((x * Matrix(x, m)).Sum(1, keepDim: true), Matrix(x, inverseCount));   // [B, 1]
        return rowMeans.Sum().Scale(1.0 / counted);
    }

    /// <summary>A constant [rows, cols] tensor on <paramref name="like"/>'s device and dtype.</summary>
    private static Tensor Matrix(Tensor like, double[,] values)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        var flat = new double[rows * cols];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(double));
        return PolicyOps.FromValues(like.Device, like.DType, flat, rows, cols);
    }
}
