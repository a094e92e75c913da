using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The clipped PPO surrogate:
/// <code>
/// ρ = exp(logp − old_logp)
/// L = −masked_mean(min(A·ρ, A·clip(ρ, 1 − ε, 1 + ε)))
/// </code>
/// All arguments cover the response positions only (columns [start:] of the full arrays).</summary>
public static class PpoActorLoss
{
    /// <summary>logProbs [B, T] (current policy), oldLogProbs [B, T] (rollout policy), advantages [B, T], mask [B, T] → scalar.</summary>
    public static double Compute(double[,] logProbs, double[,] oldLogProbs, double[,] advantages, bool[,] mask, double clipRangeRatio)
    {
        ArgumentNullException.ThrowIfNull(logProbs);
        int rows = logProbs.GetLength(0), length = logProbs.GetLength(1);
        Batch.RequireShape(oldLogProbs, rows, length, nameof(oldLogProbs));
        Batch.RequireShape(advantages, rows, length, nameof(advantages));
        Batch.RequireShape(mask, rows, length, nameof(mask));

        var surrogate = new double[rows, length];
        for (int b = 0; b < rows; b++)
        {
            for (int t = 0; t < length; t++)
            {
                double ratio = double.Exp(logProbs[b, t] - oldLogProbs[b, t]);
                double clipped = double.Clamp(ratio, 1.0 - clipRangeRatio, 1.0 + clipRangeRatio);
                double a = advantages[b, t];
                surrogate[b, t] = double.Min(a * ratio, a * clipped);
            }
        }
        return -MaskedMean.Compute(surrogate, mask);
    }
}
