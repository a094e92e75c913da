using SafeRlhf.Nn;

namespace SafeRlhf.Rlhf.Training;

/// <summary>The one place where accumulated gradients become an update: sum them over the ranks of the job, clip the
/// global norm, AdamW, zero the gradients.</summary>
public static class GradientStep
{
    /// <summary>Applies the update; returns the gradient norm before clipping. Each rank's loss must already be its
    /// share of the global loss (<see cref="TrainingRanks.ShareOf"/>), so the summed gradient is the global one.</summary>
    public static double Apply(AdamW optimizer, Module model, double clipNorm, TrainingRanks ranks)
    {
        ranks.ReduceGradients(optimizer);
        double norm = optimizer.ClipGradNorm(clipNorm);
        optimizer.Update();
        model.ZeroGrad();
        return norm;
    }
}
