using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The PPO masked mean: the mean over rows of each row's mean over its valid positions,
/// masked_mean(x, m) = mean_b( Σ_t x[b,t]·m[b,t] / Σ_t m[b,t] ).</summary>
public static class MaskedMean
{
    /// <summary>x [B, T], mask [B, T] → scalar.
    /// A row without any valid position has no mean (the reference divides 0 by 0); such rows are left out of the
    /// mean over rows, and if no row has a valid position an <see cref="ArgumentException"/> is thrown.</summary>
    public static double Compute(double[,] x, bool[,] mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        int rows = x.GetLength(0), length = x.GetLength(1);
        Batch.RequireShape(mask, rows, length, nameof(mask));

        double sumOfRowMeans = 0;
        int counted = 0;
        for (int b = 0; b < rows; b++)
        {
            double sum = 0;
            int valid = 0;
            for (int t = 0; t < length; t++)
            {
                if (!mask[b, t]) continue;
                sum += x[b, t];
                valid++;
            }
            if (valid == 0) continue;
            sumOfRowMeans += sum / valid;
            counted++;
        }
        if (counted == 0) throw new ArgumentException("masked mean: no row has a valid position", nameof(mask));
        return sumOfRowMeans / counted;
    }
}
