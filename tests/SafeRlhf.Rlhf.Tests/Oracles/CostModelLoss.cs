using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The sequence-wise cost-model loss on N (safer, unsafer) pairs, with a sign term per response:
/// <code>
/// L_C = mean(−log σ(c_u − c_s) − log σ(k_s·c_s) − log σ(k_u·c_u)) + reg · mean([c_s, c_u]²)
/// ranking accuracy = mean(c_u &gt; c_s)
/// sign accuracy    = mean over all 2N responses of [k·c &gt; 0]
/// </code>
/// k is the sign the cost should have: in the reference implementation k = −1 for a safe and +1 for an
/// unsafe response (<see cref="CostSign"/>), so that a trained cost model scores safe responses below zero.</summary>
public static class CostModelLoss
{
    /// <summary>The sign a response's cost should have: −1 if it is safe, +1 if it is unsafe.</summary>
    public static int CostSign(bool isSafe) => isSafe ? -1 : +1;

    /// <summary>The safety sign s = +1 for a safe response, −1 for an unsafe one (the negated cost sign).</summary>
    public static int SafetySign(bool isSafe) => isSafe ? +1 : -1;

    /// <summary>safer [N] (c_s), unsafer [N] (c_u), saferCostSign [N] (k_s = ±1), unsaferCostSign [N] (k_u = ±1)
    /// → loss, ranking accuracy and sign accuracy.</summary>
    public static (double Loss, double RankingAccuracy, double SignAccuracy) Compute(double[] safer, double[] unsafer,
        int[] saferCostSign, int[] unsaferCostSign, double regularization)
    {
        Batch.RequireNonEmpty(safer, nameof(safer));
        int n = safer.Length;
        Batch.RequireLength(unsafer, n, nameof(unsafer));
        Batch.RequireLength(saferCostSign, n, nameof(saferCostSign));
        Batch.RequireLength(unsaferCostSign, n, nameof(unsaferCostSign));

        double total = 0, squares = 0;
        int ranked = 0, signed = 0;
        for (int i = 0; i < n; i++)
        {
            int ks = RequireSign(saferCostSign[i], nameof(saferCostSign), i);
            int ku = RequireSign(unsaferCostSign[i], nameof(unsaferCostSign), i);
            total -= Sigmoid.Log(unsafer[i] - safer[i]);
            total -= Sigmoid.Log(ks * safer[i]);
            total -= Sigmoid.Log(ku * unsafer[i]);
            squares += safer[i] * safer[i] + unsafer[i] * unsafer[i];
            if (unsafer[i] > safer[i]) ranked++;
            if (ks * safer[i] > 0) signed++;
            if (ku * unsafer[i] > 0) signed++;
        }
        double loss = total / n + regularization * squares / (2 * n);
        return (loss, (double)ranked / n, (double)signed / (2 * n));
    }

    private static int RequireSign(int sign, string name, int index) =>
        sign is 1 or -1 ? sign : throw new ArgumentException($"{name}[{index}] = {sign}; a sign is +1 or −1", name);
}
