namespace SafeRlhf.Rlhf.Training;

/// <summary>Optimiser settings shared by the supervised stages.</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 100;
    public int BatchSize { get; init; } = 16;
    public double Lr { get; init; } = 2e-5;
    public double WeightDecay { get; init; } = 0.0;
    public double WarmupRatio { get; init; } = 0.03;
    public bool Cosine { get; init; } = true;
    public double ClipNorm { get; init; } = 1.0;
    /// <summary>Reward/cost models only: compare end scores (sequence-wise, the default) or the scores at every
    /// position from the first differing token to the longer sequence's end (token-wise).</summary>
    public ScoreLossType ScoreLoss { get; init; } = ScoreLossType.SequenceWise;

    /// <summary>Micro-batches whose gradients are summed before each optimiser step.</summary>
    public int GradientAccumulation { get; init; } = 1;

    /// <summary>Recompute block activations in the backward pass instead of keeping them (null: on for models of
    /// <see cref="Llama.LlamaModel.RecomputeByDefaultFromParameters"/> weights or more).</summary>
    public bool? GradientCheckpointing { get; init; }

    /// <summary>Data-parallel runs only: each rank keeps the AdamW moments of 1/N of the parameters (ZeRO stage 1)
    /// instead of all of them. Results are those of the unsharded run.</summary>
    public bool ShardOptimizerState { get; init; }

    public double LrAt(int step)
    {
        int warmup = (int)System.Math.Round(WarmupRatio * Steps);
        return Cosine ? Nn.LrSchedule.Cosine(Lr, step, Steps, warmup) : Nn.LrSchedule.Constant(Lr, step, warmup);
    }
}

/// <summary>How a reward or cost model's pair loss reads its scores.</summary>
public enum ScoreLossType { SequenceWise, TokenWise }

/// <summary>What a training step reports to progress displays and metric logs.</summary>
public sealed record StepMetrics(string Stage, int Step, int TotalSteps, IReadOnlyDictionary<string, double> Values);
