using SafeRlhf.Rlhf.Math;

namespace SafeRlhf.Rlhf.Tests.Oracles;

/// <summary>The sequence-wise reward-model loss on N preference pairs (scores at each sequence's last token):
/// <code>
/// L_R = mean(−log σ(r_w − r_l)) + reg · mean([r_l, r_w]²)
/// accuracy = mean(r_w &gt; r_l)
/// </code></summary>
public static class RewardModelLoss
{
    /// <summary>better [N] (r_w), worse [N] (r_l) → loss and accuracy.</summary>
    public static (double Loss, double Accuracy) Compute(double[] better, double[] worse, double regularization)
    {
        Batch.RequireNonEmpty(better, nameof(better));
        Batch.RequireLength(worse, better.Length, nameof(worse));
        int n = better.Length;

        double ranking = 0, squares = 0;
        int correct = 0;
        for (int i = 0; i < n; i++)
        {
            ranking -= Sigmoid.Log(better[i] - worse[i]);
            squares += better[i] * better[i] + worse[i] * worse[i];
            if (better[i] > worse[i]) correct++;
        }
        double loss = ranking / n + regularization * squares / (2 * n);
        return (loss, (double)correct / n);
    }
}
