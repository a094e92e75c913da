namespace SafeRlhf.Tensors;

// Fused log-softmax + negative log-likelihood, mean over the targets that are not ignoreIndex.
public static partial class Ops
{
    /// <summary>logits [N, V], targets I32 [N] → scalar mean loss over valid targets (0 if none).</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, int ignoreIndex = -100)
    {
        CheckCompute("CrossEntropy", logits);
        CheckIndex("CrossEntropy", targets, logits.Device);
        CheckRank("CrossEntropy", logits, 2, "logits [N, V]");
        if (targets.Rank != 1 || targets.Dim(0) != logits.Dim(0))
            throw new TensorShapeException($"CrossEntropy: targets {targets.Shape} must be [N] for logits {logits.Shape}");
        var x = logits.Contiguous();
        var t = targets.Contiguous();
        int valid = t.ToArray<int>().Count(v => v != ignoreIndex);
        var losses = Output(x.Device, x.DType, x.Dim(0));
        var lse = Output(x.Device, x.DType, x.Dim(0));
        x.Backend.CrossEntropy(x, t, losses, lse, ignoreIndex);
        double norm = 1.0 / Math.Max(valid, 1);
        Tensor mean;
        using (Autograd.GradMode.NoGrad()) mean = losses.Sum().Scale(norm);
        var result = Record("CrossEntropy", mean, [logits], [x, t, lse], dy =>
        {
            var dLosses = BroadcastView("CrossEntropy", dy.Scale(norm), [x.Dim(0)]).Contiguous();
            var dx = OutputLike(x);
            x.Backend.CrossEntropyBackward(x, t, lse, dLosses, dx, ignoreIndex);
            return [dx];
        });
        return Finish(result, x, t, losses, lse);
    }

    /// <summary>logits [N, V], targets I32 [N] → log softmax(logits[n])[targets[n]] for every row [N], without
    /// materialising the [N, V] log-softmax (the cross-entropy kernels, negated).</summary>
    public static Tensor TokenLogProbs(Tensor logits, Tensor targets)
    {
        CheckCompute("TokenLogProbs", logits);
        CheckIndex("TokenLogProbs", targets, logits.Device);
        CheckRank("TokenLogProbs", logits, 2, "logits [N, V]");
        if (targets.Rank != 1 || targets.Dim(0) != logits.Dim(0))
            throw new TensorShapeException($"TokenLogProbs: targets {targets.Shape} must be [N] for logits {logits.Shape}");
        const int noIgnoredTarget = int.MinValue;
        var x = logits.Contiguous();
        var t = targets.Contiguous();
        var losses = Output(x.Device, x.DType, x.Dim(0));
        var lse = Output(x.Device, x.DType, x.Dim(0));
        x.Backend.CrossEntropy(x, t, losses, lse, noIgnoredTarget);
        Tensor logp;
        using (Autograd.GradMode.NoGrad()) logp = losses.Neg();
        var result = Record("TokenLogProbs", logp, [logits], [x, t, lse], dy =>
        {
            var dLosses = dy.Neg().Contiguous();
            var dx = OutputLike(x);
            x.Backend.CrossEntropyBackward(x, t, lse, dLosses, dx, noIgnoredTarget);
            return [dx];
        });
        return Finish(result, x, t, losses, lse);
    }
}
