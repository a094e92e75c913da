using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Losses;

/// <summary>The reward- and cost-model pair losses as differentiable tensor expressions (docs/SAFE_RLHF.md):
/// <code>
/// reward: L = mean(−log σ(r_w − r_l)) + reg · mean([r_w, r_l]²)
/// cost:   L = mean(−log σ(c_u − c_s) − log σ(k_u·c_u) − log σ(k_s·c_s)) + reg · mean([c_u, c_s]²)
/// </code>
/// with the cost sign k = −1 for a safe and +1 for an unsafe response. The tests hold double-precision oracles
/// of both and check them and these against the Safe-RLHF goldens.</summary>
public static class ScorePairLosses
{
    /// <summary>The pair loss on end scores: high [N] should exceed low [N] (better over worse, or unsafer over safer).
    /// With cost signs (highCostSign [N], lowCostSign [N]) the sign terms −logσ(k·c) are added for both responses.</summary>
    public static Tensor SequenceWise(Tensor high, Tensor low, double[]? highCostSign, double[]? lowCostSign, double regularization)
    {
        var loss = (high - low).LogSigmoid().Neg();
        if (highCostSign is not null && lowCostSign is not null)
        {
            int n = high.Dim(0);
            var kHigh = PolicyOps.FromValues(high.Device, high.DType, highCostSign, n);
            var kLow = PolicyOps.FromValues(high.Device, high.DType, lowCostSign, n);
            loss = loss - (high * kHigh).LogSigmoid() - (low * kLow).LogSigmoid();
        }
        var squares = Ops.Concat([high, low], 0).Square().Mean();
        return loss.Mean() + squares.Scale(regularization);
    }

    /// <summary>The token-wise pair loss of the reference: for pair i, the mean over positions t in [start_i, end_i] of
    /// −logσ(h[t] − l[t]) (plus, with cost signs, the means of −logσ(k_h·h[t]) and −logσ(k_l·l[t])), plus
    /// reg·mean(end scores²); then the mean over pairs. high, low [N, L] per-token scores; highEnd, lowEnd [N].</summary>
    public static Tensor TokenWise(Tensor high, Tensor low, int[] start, int[] end, double[]? highCostSign, double[]? lowCostSign,
        Tensor highEnd, Tensor lowEnd, double regularization)
    {
        int n = high.Dim(0), l = high.Dim(1);
        var weights = new double[n * l];
        for (int i = 0; i < n; i++)
            for (int t = start[i]; t <= end[i]; t++) weights[i * l + t] = 1.0 / (end[i] - start[i] + 1);
        var w = PolicyOps.FromValues(high.Device, high.DType, weights, n, l);
        var perToken = (high - low).LogSigmoid().Neg();
        if (highCostSign is not null && lowCostSign is not null)
        {
            var kHigh = PolicyOps.FromValues(high.Device, high.DType, highCostSign, n, 1);
            var kLow = PolicyOps.FromValues(high.Device, high.DType, lowCostSign, n, 1);
            perToken = perToken - (high * kHigh).LogSigmoid() - (low * kLow).LogSigmoid();
        }
        var squares = Ops.Concat([highEnd, lowEnd], 0).Square().Mean();
        return (perToken * w).Sum().Scale(1.0 / n) + squares.Scale(regularization);
    }
}
