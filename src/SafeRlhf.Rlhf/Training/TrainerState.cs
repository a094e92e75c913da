using SafeRlhf.Nn;

namespace SafeRlhf.Rlhf.Training;

/// <summary>Where a resumable training run stands: the optimiser steps completed, their losses, and the optimiser
/// state to restore before the next step. <see cref="TrainingLoop"/> updates <see cref="Step"/> and
/// <see cref="Losses"/> as it goes and reports each completed step (and an interruption between steps) through
/// <see cref="OnCheckpoint"/>, which is where a caller saves weights, optimiser moments and its random-number state.
/// Together with the caller's RNG state this is everything needed to continue a run with the same losses as one
/// that was never stopped.</summary>
public sealed class TrainerState
{
    /// <summary>Optimiser steps completed so far (the next step to run, 0-based).</summary>
    public int Step { get; set; }

    /// <summary>The loss of every completed step, in order.</summary>
    public List<double> Losses { get; init; } = [];

    /// <summary>Saved optimiser state to restore before the first step (null for fresh optimisers).</summary>
    public SavedOptimizers? Saved { get; init; }

    /// <summary>The run's optimisers by role, known once the run has begun.</summary>
    public IReadOnlyList<(string Name, AdamW Optimizer)> Optimizers { get; private set; } = [];

    /// <summary>Called after every completed step with interrupted = false, and with interrupted = true when
    /// cancellation stops training between steps (before the cancellation exception is thrown).</summary>
    public Action<TrainerState, bool>? OnCheckpoint { get; init; }

    internal void Begin(IReadOnlyList<(string Name, AdamW Optimizer)> optimizers, int totalSteps)
    {
        if (Step < 0 || Step > totalSteps)
            throw new ArgumentOutOfRangeException(nameof(Step), Step, $"the starting step must be in [0, {totalSteps}]");
        if (Losses.Count != Step)
            throw new ArgumentException($"trainer state has {Losses.Count} losses for {Step} completed steps");
        Optimizers = optimizers;
        if (Saved is not null)
            foreach (var (name, optimizer) in optimizers) Saved.Restore(name, optimizer);
    }

    /// <summary>Throws <see cref="OperationCanceledException"/> when cancellation was <paramref name="requested"/> (here
    /// or, in a data-parallel run, on another rank), after reporting the interruption to <see cref="OnCheckpoint"/>.</summary>
    internal void CheckCancelled(bool requested, CancellationToken cancel)
    {
        if (!requested) return;
        OnCheckpoint?.Invoke(this, true);
        cancel.ThrowIfCancellationRequested();
        throw new OperationCanceledException("another rank of the job was interrupted");
    }

    internal void Completed(double loss)
    {
        Losses.Add(loss);
        Step++;
        OnCheckpoint?.Invoke(this, false);
    }

    internal double TailMean() => Losses.Skip(Losses.Count - System.Math.Max(1, Losses.Count / 10)).Average();
}

/// <summary>Optimiser state read back from a checkpoint: each optimiser's step by role and the moments by
/// <c>&lt;role&gt;.&lt;parameter&gt;</c> (or <c>&lt;parameter&gt;</c> for the unnamed single optimiser).</summary>
public sealed record SavedOptimizers(IReadOnlyDictionary<string, int> Steps, IReadOnlyDictionary<string, (double[] M, double[] V)> Moments,
    string Source = "saved optimizer state")
{
    /// <summary>The key prefix of an optimiser's moments.</summary>
    public static string Prefix(string name) => name.Length == 0 ? "" : name + ".";

    /// <summary>Restores <paramref name="optimizer"/> from the moments saved under <paramref name="name"/>; a missing
    /// part throws <see cref="InvalidDataException"/>.</summary>
    public void Restore(string name, AdamW optimizer)
    {
        if (!Steps.TryGetValue(name, out int step))
            throw new InvalidDataException($"corrupt checkpoint: {Source}: records no step for optimizer '{(name.Length == 0 ? "model" : name)}'");
        string prefix = Prefix(name);
        var mine = new Dictionary<string, (double[] M, double[] V)>(StringComparer.Ordinal);
        foreach (var (key, mv) in Moments)
            if (key.StartsWith(prefix, StringComparison.Ordinal)) mine[key[prefix.Length..]] = mv;
        try { optimizer.Restore(step, mine); }
        catch (Exception e) when (e is KeyNotFoundException or InvalidDataException)
        {
            throw new InvalidDataException($"corrupt checkpoint: {Source}: {e.Message}", e);
        }
    }
}
