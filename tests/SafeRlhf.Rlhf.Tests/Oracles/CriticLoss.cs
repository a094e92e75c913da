using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The clipped value loss of a critic:
/// <code>
/// V_clip = clip(V, V_old − ε, V_old + ε)
/// L_V    = 0.5 · masked_mean(max((V − R)², (V_clip − R)²))
/// </code>
/// All arguments cover the response positions only (columns [start:] of the full arrays).</summary>
public static class CriticLoss
{
    /// <summary>values [B, T] (current critic), oldValues [B, T] (critic at rollout), returns [B, T] (GAE returns), mask [B, T] → scalar.</summary>
    public static double Compute(double[,] values, double[,] oldValues, double[,] returns, bool[,] mask, double clipRangeValue)
    {
        ArgumentNullException.ThrowIfNull(values);
        int rows = values.GetLength(0), length = values.GetLength(1);
        Batch.RequireShape(oldValues, rows, length, nameof(oldValues));
        Batch.RequireShape(returns, rows, length, nameof(returns));
        Batch.RequireShape(mask, rows, length, nameof(mask));

        var loss = new double[rows, length];
        for (int b = 0; b < rows; b++)
        {
            for (int t = 0; t < length; t++)
            {
                double v = values[b, t];
                double clipped = double.Clamp(v, oldValues[b, t] - clipRangeValue, oldValues[b, t] + clipRangeValue);
                double plain = (v - returns[b, t]) * (v - returns[b, t]);
                double limited = (clipped - returns[b, t]) * (clipped - returns[b, t]);
                loss[b, t] = double.Max(plain, limited);
            }
        }
        return 0.5 * MaskedMean.Compute(loss, mask);
    }
}
