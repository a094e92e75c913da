using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>Direct preference optimisation on N pairs of sequence log-probabilities (sums over response tokens):
/// <code>
/// L = mean(−log σ(β·((π_w − ref_w) − (π_l − ref_l))))
/// </code>
/// The implicit rewards are β·(π − ref); accuracy is the fraction of pairs whose chosen reward is higher.</summary>
public static class DpoLoss
{
    /// <summary>policyChosen [N], policyRejected [N], referenceChosen [N], referenceRejected [N] → loss and accuracy.</summary>
    public static (double Loss, double Accuracy) Compute(double[] policyChosen, double[] policyRejected,
        double[] referenceChosen, double[] referenceRejected, double beta)
    {
        Batch.RequireNonEmpty(policyChosen, nameof(policyChosen));
        int n = policyChosen.Length;
        Batch.RequireLength(policyRejected, n, nameof(policyRejected));
        Batch.RequireLength(referenceChosen, n, nameof(referenceChosen));
        Batch.RequireLength(referenceRejected, n, nameof(referenceRejected));
        if (!(beta > 0)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "β must be positive");

        double total = 0;
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            double chosenReward = beta * (policyChosen[i] - referenceChosen[i]);
            double rejectedReward = beta * (policyRejected[i] - referenceRejected[i]);
            total -= Sigmoid.Log(chosenReward - rejectedReward);
            if (chosenReward > rejectedReward) correct++;
        }
        return (total / n, (double)correct / n);
    }
}
