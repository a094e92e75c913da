using SafeRlhf.Llama.Formats;
using SafeRlhf.Rlhf.Training;

namespace SafeRlhf.Rlhf.Checkpoints;

/// <summary>A checkpoint or run folder that cannot be used: missing or malformed parts, a different stage, an
/// unsupported version. The message names the file.</summary>
public sealed class CheckpointException(string message, string filePath = "") : InputFormatException(filePath, message, null);

/// <summary>What trainer_state.json holds: the stage, the steps done of the total, the optimiser step, the random
/// generator's state and the loss of every completed step. Runs with several optimisers (the RL stages) also record
/// each optimiser's step by name, and PPO-Lagrangian the multiplier's state.</summary>
public sealed record TrainerStateFile(string Format, int Version, string Stage, int Step, int TotalSteps, int OptimizerStep,
    ulong[] RngState, double[] Losses, Dictionary<string, int>? OptimizerSteps = null, LagrangeState? Lagrange = null);

/// <summary>The PPO-Lagrangian multiplier as saved: ln λ and the window of recent episode costs, oldest first.</summary>
public sealed record LagrangeState(double LogLambda, double[] Window);

/// <summary>One weights file of a checkpoint and how to write it.</summary>
public sealed record CheckpointModel(string File, Action<string> Save);

/// <summary>A checkpoint read back: its folder, saved state and optimiser moments (keys <c>&lt;role&gt;.&lt;parameter&gt;</c>,
/// or <c>&lt;parameter&gt;</c> for the unnamed single optimiser of a supervised stage).</summary>
public sealed record LoadedCheckpoint(string Folder, TrainerStateFile State, IReadOnlyDictionary<string, (double[] M, double[] V)> Moments)
{
    public string ModelPath => Path.Combine(Folder, RunCheckpoints.ModelFile);

    /// <summary>The path of one weights file of the checkpoint; a missing file throws <see cref="CheckpointException"/>.</summary>
    public string File(string name)
    {
        string path = Path.Combine(Folder, name);
        return System.IO.File.Exists(path) ? path : throw new CheckpointException($"corrupt checkpoint: {path} is missing");
    }

    /// <summary>The optimiser state for <see cref="TrainerState.Saved"/>.</summary>
    public SavedOptimizers Optimizers => new(
        State.OptimizerSteps ?? new Dictionary<string, int> { [""] = State.OptimizerStep }, Moments,
        Path.Combine(Folder, RunCheckpoints.OptimizerFile));
}

/// <summary>When a run writes checkpoints: every <see cref="Every"/> steps, at the last step, and once when the run
/// first reaches <see cref="StopAfter"/> (a run resumed at or after that step does not stop there again).</summary>
public sealed record CheckpointSchedule(int Every, int StopAfter, int StartStep, int TotalSteps)
{
    /// <summary>The default of checkpoint_every: often enough that a stopped run loses little, rarely enough that
    /// saving stays a small share of the run.</summary>
    public const int DefaultEvery = 50;

    /// <summary>True when the run stops (with a checkpoint) after step <paramref name="step"/>.</summary>
    public bool StopsAfter(int step) => StopAfter > 0 && StartStep < StopAfter && step == StopAfter && step < TotalSteps;

    /// <summary>True when a checkpoint is written after step <paramref name="step"/>.</summary>
    public bool SavesAfter(int step) => step == TotalSteps || (Every > 0 && step % Every == 0) || StopsAfter(step);

    /// <summary>Throws <see cref="CheckpointException"/> (naming the checkpoint folder) when a run saved after step
    /// <paramref name="savedStep"/> cannot continue to <paramref name="totalSteps"/>; a larger total extends the run.</summary>
    public static void CheckResumable(string folder, int savedStep, int totalSteps, string stepsKey)
    {
        if (totalSteps < savedStep)
            throw new CheckpointException($"--resume: {folder} has completed {savedStep} steps, more than {stepsKey} = {totalSteps}; " +
                                        $"set {stepsKey} ≥ {savedStep} to continue");
    }
}
