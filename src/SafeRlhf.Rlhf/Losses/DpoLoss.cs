using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Losses;

/// <summary>Direct preference optimisation on N pairs of sequence log-probabilities as a differentiable tensor
/// expression (the tests hold a double-precision oracle of the same formula):
/// <code>
/// L = mean(−log σ(β·((π_w − ref_w) − (π_l − ref_l))))
/// </code>
/// The implicit rewards are β·(π − ref); accuracy is the fraction of pairs whose chosen reward is higher.</summary>
public static class DpoLoss
{
    /// <summary>policy [2N] (π of the N chosen sequences, then of the N rejected ones; carries gradients),
    /// reference [2N] (the same sums under the reference policy) → loss and accuracy.</summary>
    public static (Tensor Loss, double Accuracy) Compute(Tensor policy, Tensor reference, double beta)
    {
        if (!(beta > 0)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "β must be positive");
        int n = policy.Dim(0) / 2;
        var margin = (policy - reference).Scale(beta);                                      // implicit rewards [2N]
        var diff = margin.Narrow(0, 0, n) - margin.Narrow(0, n, n);                         // [N]
        var loss = diff.LogSigmoid().Neg().Mean();
        double accuracy = diff.ToDoubleArray().Average(d => d > 0 ? 1.0 : 0.0);
        return (loss, accuracy);
    }
}
