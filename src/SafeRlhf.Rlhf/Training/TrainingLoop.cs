using SafeRlhf.Nn;

namespace SafeRlhf.Rlhf.Training;

/// <summary>One optimiser step of a stage (SFT, reward, cost, DPO, PPO, PPO-Lagrangian, reward shaping), run by
/// <see cref="TrainingLoop"/>.</summary>
public interface ITrainingStep
{
    /// <summary>The stage name in metrics ("sft", "reward", "ppo_lag", ...).</summary>
    string Stage { get; }

    /// <summary>Optimiser steps of the whole run.</summary>
    int TotalSteps { get; }

    /// <summary>The metric recorded as the step's loss in the trainer state.</summary>
    string LossKey { get; }

    /// <summary>The optimisers by role ("" for the single optimiser of a supervised stage), for checkpoints.</summary>
    IReadOnlyList<(string Name, AdamW Optimizer)> Optimizers { get; }

    /// <summary>The data-parallel ranks the step runs on (<see cref="TrainingRanks.Single"/> for one process).</summary>
    TrainingRanks Ranks { get; }

    /// <summary>Runs optimiser step <paramref name="step"/> (0-based) and returns its metrics (global over the ranks).</summary>
    StepMetrics Run(int step);
}

/// <summary>The training-run skeleton every stage and the pipeline share: restore the optimisers of a resumed run,
/// then for each remaining step check for cancellation (reporting the interruption so that a checkpoint can be
/// saved), run the step, report its metrics and record it (where checkpoints are written). Gradient accumulation,
/// clipping, the schedule and the non-finite-loss stop live in the steps (<see cref="SupervisedStep"/>,
/// <see cref="PpoTrainer"/>) and their one update path, <see cref="GradientStep"/>.</summary>
public static class TrainingLoop
{
    /// <summary>Runs <paramref name="task"/> from <see cref="TrainerState.Step"/> to its last step; returns the mean
    /// loss of the last 10% of all steps. Cancellation between steps throws <see cref="OperationCanceledException"/>
    /// after <see cref="TrainerState.OnCheckpoint"/> has seen the interruption.</summary>
    public static double Run(ITrainingStep task, TrainerState state, Action<StepMetrics>? onStep = null, CancellationToken cancel = default)
    {
        state.Begin(task.Optimizers, task.TotalSteps);
        for (int step = state.Step; step < task.TotalSteps; step++)
        {
            // Ranks stop together: a signal seen by any rank stops every rank at the same step boundary.
            state.CheckCancelled(task.Ranks.Any(cancel.IsCancellationRequested), cancel);
            var metrics = task.Run(step);
            onStep?.Invoke(metrics);
            state.Completed(metrics.Values[task.LossKey]);
        }
        return state.TailMean();
    }
}
