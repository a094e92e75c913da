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
/// the end or at stop_after_steps, 130 after SIGINT, 143 after SIGTERM) and the closing line.</summary>
public sealed class TrainingSession(string stage, RunFolder run, CheckpointSettings settings, Rng rng, bool quiet)
{
    /// <summary>Exit code after SIGTERM (128 + 15), as shells report a process it ended.</summary>
    public const int Terminated = 143;

    private PosixSignal? _signal;
    private int _savedStep = -1;

    public RunFolder Run => run;

    /// <summary>The checkpoint the run resumed from (null for a fresh run).</summary>
    public LoadedCheckpoint? Resumed { get; private set; }

    /// <summary>The newest checkpoint folder written or resumed from.</summary>
    public string? LastCheckpoint { get; private set; }

    /// <summary>Starts the run: with <paramref name="resuming"/>, reads the latest checkpoint, loads each module from its
    /// file, restores the random state and drops metrics written after the checkpoint; otherwise makes sure the folder
    /// holds no earlier run.</summary>
    public void Open(bool resuming, IReadOnlyList<(string File, Module Module)> weights)
    {
        if (!resuming)
        {
            if (RunCheckpoints.Exists(run.Path))
                throw new CliException($"--out: {run.Path} already holds a checkpoint; continue it with --resume {run.Path} or choose another folder");
            if (File.Exists(run.MetricsPath)) File.Delete(run.MetricsPath);
            return;
        }
        var checkpoint = RunCheckpoints.ReadLatest(run.Path, stage);
        CheckpointSchedule.CheckResumable(checkpoint.Folder, checkpoint.State.Step, settings.TotalSteps, settings.StepsKey);
        foreach (var (file, module) in weights) ModuleFiles.LoadInto(module, checkpoint.File(file));
        rng.State = checkpoint.State.RngState;
        MetricsLog.Truncate(run.MetricsPath, checkpoint.State.Step);
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
                if (interrupted || schedule.SavesAfter(s.Step))
                {
                    LastCheckpoint = RunCheckpoints.Save(run.Path, stage, s.Step, settings.TotalSteps, models, s.Optimizers, rng, s.Losses,
                        lagrange?.Invoke(), extras);
                    _savedStep = s.Step;
                }
                if (!interrupted && schedule.StopsAfter(s.Step)) stopAfter.Cancel();
            },
        };
    }

    /// <summary>Runs <paramref name="train"/> with the progress display; returns null when training ran to its last
    /// step, else the exit code after a stop at stop_after_steps or a signal (having said where things stand).</summary>
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
            return null;
        }
        catch (OperationCanceledException) when (!signalled && stopAfter.IsCancellationRequested)
        {
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
