using SafeRlhf.Nn;

namespace SafeRlhf.Rlhf.Training;

/// <summary>The seam for data-parallel training. Every optimiser update of every stage passes its gradients through
/// <see cref="ReduceGradients"/> after the backward pass and before clipping (an all-reduce mean across workers goes
/// there), its step metrics through <see cref="ReduceMetric"/>, and writes files only where
/// <see cref="WritesFiles"/> holds (rank 0). <see cref="SingleProcess"/> is the only implementation today.</summary>
public interface IGradientReducer
{
    /// <summary>Combines the gradients of <paramref name="optimizer"/>'s parameters across workers, in place.</summary>
    void ReduceGradients(AdamW optimizer);

    /// <summary>The global value of a per-worker metric (for example the mean loss over all workers).</summary>
    double ReduceMetric(double value);

    /// <summary>True on the one worker that writes checkpoints and metrics.</summary>
    bool WritesFiles { get; }
}

/// <summary>One process: gradients and metrics are already global.</summary>
public sealed class SingleProcess : IGradientReducer
{
    public static readonly SingleProcess Instance = new();

    private SingleProcess() { }

    public void ReduceGradients(AdamW optimizer) { }

    public double ReduceMetric(double value) => value;

    public bool WritesFiles => true;
}

/// <summary>The one place where accumulated gradients become an update: reduce across workers, clip the global norm,
/// AdamW, zero the gradients.</summary>
public static class GradientStep
{
    /// <summary>Applies the update; returns the gradient norm before clipping.</summary>
    public static double Apply(AdamW optimizer, Module model, double clipNorm, IGradientReducer reducer)
    {
        reducer.ReduceGradients(optimizer);
        double norm = optimizer.ClipGradNorm(clipNorm);
        optimizer.Update();
        model.ZeroGrad();
        return norm;
    }
}
