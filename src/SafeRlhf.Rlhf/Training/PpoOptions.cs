namespace SafeRlhf.Rlhf.Training;

/// <summary>Which RL objective to optimise.</summary>
public enum RlMode
{
    /// <summary>Plain PPO on the reward (one critic).</summary>
    Ppo,
    /// <summary>PPO-Lagrangian: reward and cost critics, a learned multiplier λ holding the expected cost under the threshold.</summary>
    PpoLagrangian,
    /// <summary>PPO on the shaped reward R − ν·C with a fixed ν (one critic).</summary>
    RewardShaping,
}

/// <summary>RL hyper-parameters; defaults are the reference's (docs/SAFE_RLHF.md) except learning rates and sizes,
/// which the caller sets for its model.</summary>
public sealed record PpoOptions
{
    public int Steps { get; init; } = 50;
    /// <summary>Recompute block activations of the actor and critics in their backward passes (null: on for models
    /// of <see cref="Llama.LlamaModel.RecomputeByDefaultFromParameters"/> weights or more).</summary>
    public bool? GradientCheckpointing { get; init; }
    /// <summary>Data-parallel runs only: each rank keeps the AdamW moments of 1/N of each trained model's parameters
    /// (ZeRO stage 1).</summary>
    public bool ShardOptimizerState { get; init; }
    public int BatchSize { get; init; } = 32;
    public int MaxNewTokens { get; init; } = 16;
    public double ActorLr { get; init; } = 1e-5;
    public double CriticLr { get; init; } = 5e-6;
    public double ActorWeightDecay { get; init; } = 0.01;
    public double CriticWeightDecay { get; init; } = 0.0;
    public double ClipNorm { get; init; } = 1.0;
    public double KlCoeff { get; init; } = 0.01;
    public double ClipRangeRatio { get; init; } = 0.2;
    public double ClipRangeValue { get; init; } = 5.0;
    public double ClipRangeScore { get; init; } = 50.0;
    public double Gamma { get; init; } = 1.0;
    public double GaeLambda { get; init; } = 0.95;
    public double Threshold { get; init; } = 0.0;
    public double LambdaInit { get; init; } = 1.0;
    public double LambdaLr { get; init; } = 0.1;
    public double LambdaMax { get; init; } = 5.0;
    public int EpisodeCostWindow { get; init; } = 128;
    /// <summary>ν of reward shaping (R − ν·C).</summary>
    public double Nu { get; init; } = 1.0;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    /// <summary>Weight of the SFT loss on a pretraining batch after each RL step (0: off).</summary>
    public double PtxCoeff { get; init; } = 0.0;
}
