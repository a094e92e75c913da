using SafeRlhf.Cli.Distributed;
using System.Runtime.InteropServices;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Stages;

/// <summary>How a training command checkpoints: checkpoint_every and stop_after_steps of its config, the total of its
/// steps and the config key that sets it (for messages).</summary>
public sealed record CheckpointSettings(int Every, int StopAfter, int TotalSteps, string StepsKey);

/// <summary>Everything around the library's <see cref="TrainingLoop"/> that every training command shares: the run
/// folder; a fresh start, or a resume from the latest checkpoint (the run may be extended by asking for more steps);
/// checkpoints on the schedule, once at stop_after_steps, at the end and on SIGINT or SIGTERM; the exit code (0 at
/// the end or at stop_after_steps, 130 after SIGINT, 143 after SIGTERM) and the closing line.
/// In a data-parallel job every rank runs a session over the same folder: all ranks load a resumed checkpoint and take
/// part in saving one (a sharded optimizer gathers its moments), rank 0 alone writes.</summary>
public sealed class TrainingSession(string stage, RunFolder run, CheckpointSettings settings, Rng rng, bool quiet, TrainingRanks ranks)
{
    /// <summary>Exit code after SIGTERM (128 + 15), as shells report a process it ended.</summary>
    public const int Terminated = 143;

    private PosixSignal? _signal;
    private IReadOnlyList<(string File, Module Module)> _weights = [];
    private int _savedStep = -1;

    public RunFolder Run => run;

    /// <summary>PPO-Lagrangian's cost threshold, drawn on the cost plot (null: no threshold line).</summary>
    public double? CostThreshold { get; set; }

    /// <summary>The checkpoint the run resumed from (null for a fresh run).</summary>
    public LoadedCheckpoint? Resumed { get; private set; }

    /// <summary>The newest checkpoint folder written or resumed from.</summary>
    public string? LastCheckpoint { get; private set; }

    /// <summary>Starts the run: with <paramref name="resuming"/>, reads the latest checkpoint, loads each module from its
    /// file, restores the random state and drops metrics written after the checkpoint; otherwise makes sure the folder
    /// holds no earlier run.</summary>
    public void Open(bool resuming, IReadOnlyList<(string File, Module Module)> weights)
    {
        _weights = weights;
        if (!resuming)
        {
            if (RunCheckpoints.Exists(run.Path))
                throw new CliException($"--out: {run.Path} already holds a checkpoint; continue it with --resume {run.Path} or choose another folder");
            if (run.Writes && File.Exists(run.MetricsPath)) File.Delete(run.MetricsPath);
            foreach (var (_, module) in weights) ranks.BroadcastWeights(module);
            return;
        }
        var checkpoint = RunCheckpoints.ReadLatest(run.Path, stage);
        CheckpointSchedule.CheckResumable(checkpoint.Folder, checkpoint.State.Step, settings.TotalSteps, settings.StepsKey);
        foreach (var (file, module) in weights) ModuleFiles.LoadInto(module, checkpoint.File(file));
        rng.State = checkpoint.State.RngState;
        if (run.Writes) MetricsLog.Truncate(run.MetricsPath, checkpoint.State.Step);
        (Resumed, LastCheckpoint, _savedStep) = (checkpoint, checkpoint.Folder, checkpoint.State.Step);
    }

    /// <summary>Steps already done (those of the checkpoint resumed from).</summary>
    public int StartStep => Resumed?.State.Step ?? 0;

    /// <summary>"resuming at step N of" / "extending from N to" / "" for the start line.</summary>
    public string ResumeNote => Resumed is not { } c ? ""
        : c.State.TotalSteps != settings.TotalSteps ? $"extending from {c.State.TotalSteps} to "
        : $"resuming at step {c.State.Step} of ";

    /// <summary>The trainer state of the run: the resumed steps, losses and optimiser state, and checkpoints written
    /// as <see cref="CheckpointSchedule"/> says. <paramref name="lagrange"/> gives PPO-Lagrangian's multiplier.</summary>
    public TrainerState NewState(IReadOnlyList<CheckpointModel> models, IReadOnlyList<CheckpointModel> extras,
        CancellationTokenSource stopAfter, Func<LagrangeState?>? lagrange = null)
    {
        var schedule = new CheckpointSchedule(settings.Every, settings.StopAfter, StartStep, settings.TotalSteps);
        return new TrainerState
        {
            Step = StartStep,
            Losses = Resumed?.State.Losses.ToList() ?? [],
            Saved = Resumed?.Optimizers,
            OnCheckpoint = (s, interrupted) =>
            {
                if (s.Step == _savedStep || (interrupted && s.Step == 0)) return;
                if (interrupted && !ranks.IsSingle && s.Optimizers.Any(o => o.Optimizer.Sharded))
                    Console.Error.WriteLine($"interrupted: no checkpoint of step {s.Step} (sharded optimizer state needs every rank, " +
                                            "and a rank may be gone); the last scheduled checkpoint stands");
                else if (interrupted || schedule.SavesAfter(s.Step))
                {
                    LastCheckpoint = Save(s, models, extras, lagrange, check: !interrupted);
                    _savedStep = s.Step;
                }
                if (!interrupted && schedule.StopsAfter(s.Step)) stopAfter.Cancel();
            },
        };
    }

    /// <summary>Saves a checkpoint: rank 0 writes what it holds, which every rank holds alike. With
    /// <paramref name="check"/> (scheduled saves, when every rank is known to be alive) the ranks first confirm that they
    /// still hold the same weights and random state; every rank takes part in gathering sharded optimizer moments.</summary>
    private string Save(TrainerState s, IReadOnlyList<CheckpointModel> models, IReadOnlyList<CheckpointModel> extras,
        Func<LagrangeState?>? lagrange, bool check)
    {
        if (check)
        {
            foreach (var (file, module) in _weights) ranks.CheckIdentical(module, $"before the checkpoint of step {s.Step} ({file})");
            ranks.CheckIdentical(rng.State, $"before the checkpoint of step {s.Step} (random state)");
        }
        using var scope = new TensorScope();
        if (ranks.WritesFiles)
            return RunCheckpoints.Save(run.Path, stage, s.Step, settings.TotalSteps, models, s.Optimizers, rng, s.Losses, lagrange?.Invoke(), extras);
        foreach (var (_, optimizer) in s.Optimizers)
            if (optimizer.Sharded) _ = optimizer.Moments().ToList();
        return Path.Combine(run.Path, $"checkpoint-{s.Step}");
    }

    /// <summary>Runs <paramref name="train"/> with the progress display; returns null when training ran to its last
    /// step, else the exit code after a stop at stop_after_steps or a signal (having said where things stand). The
    /// curves of metrics.jsonl are drawn into plots/ when training ends or stops at stop_after_steps (rank 0).</summary>
    public int? Train(TrainerState state, CancellationTokenSource stopAfter,
        Func<TrainerState, Action<StepMetrics>, CancellationToken, double> train)
    {
        bool signalled = false;
        try
        {
            RunWithProgress.Execute(quiet, run, (onStep, _, cancel) =>
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, stopAfter.Token);
                try { return train(state, onStep, linked.Token); }
                finally { signalled = cancel.IsCancellationRequested; }
            }, signal => _signal = signal);
            Plots.WriteCurves(run, CostThreshold);
            return null;
        }
        catch (OperationCanceledException) when (!signalled && stopAfter.IsCancellationRequested)
        {
            Plots.WriteCurves(run, CostThreshold);
            Console.WriteLine(quiet ? LastCheckpoint
                : $"stopped after step {state.Step} of {settings.TotalSteps}; checkpoint {LastCheckpoint} (continue with --resume {run.Path})");
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine(LastCheckpoint is null
                ? "interrupted before the first step; nothing saved"
                : $"interrupted at step {state.Step} of {settings.TotalSteps}; checkpoint {LastCheckpoint} (continue with --resume {run.Path})");
            return _signal == PosixSignal.SIGTERM ? Terminated : CliRunner.Interrupted;
        }
    }
}
