using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

/// <summary>PPO, PPO-Lagrangian and reward-shaping RL from human feedback (docs/SAFE_RLHF.md). Each
/// <see cref="Step"/> reads rollout → experience → advantages → λ → updates: sample responses; score them with the
/// frozen reward and cost models and take the rollout policy's, the reference's and the critics' values (no
/// gradients, kept as double arrays); shape per-token signals with the reference KL and run GAE
/// (SafeRlhf.Rlhf.Math, double); update λ (PPO-Lagrangian); then one clipped actor update and one clipped update per
/// critic (the tensor losses of SafeRlhf.Rlhf.Losses), each through <see cref="GradientStep"/>.</summary>
public sealed partial class PpoTrainer : ITrainingStep, IDisposable
{
    private readonly RlMode _mode;
    private readonly LlamaModel _actor;
    private readonly LlamaModel? _reference;
    private readonly ScoreModel _rewardModel, _costModel;
    private readonly ScoreModel _rewardCritic;
    private readonly ScoreModel? _costCritic;
    private readonly PpoOptions _o;
    private readonly Func<Rng, int[]> _samplePrompt;
    private readonly IReadOnlyList<SftTrainer.Example>? _ptxData;
    private readonly Rng _rng;
    private readonly int _padId, _eosId;
    private readonly AdamW _actorOptimizer, _rewardCriticOptimizer;
    private readonly AdamW? _costCriticOptimizer;

    /// <param name="reference">The frozen SFT policy, or null when the actor trains LoRA adapters: then the
    /// reference is the actor with its adapters switched off.</param>
    public PpoTrainer(RlMode mode, LlamaModel actor, LlamaModel? reference, ScoreModel rewardModel, ScoreModel costModel,
        ScoreModel rewardCritic, ScoreModel? costCritic, PpoOptions options, Func<Rng, int[]> samplePrompt, Rng rng,
        int padId, int eosId, IReadOnlyList<SftTrainer.Example>? ptxData = null, TrainingRanks? ranks = null)
    {
        Ranks = ranks ?? TrainingRanks.Single;
        if (mode == RlMode.PpoLagrangian && costCritic is null)
            throw new ArgumentException("PPO-Lagrangian needs a cost critic");
        _mode = mode;
        _actor = actor;
        _reference = reference;
        _rewardModel = rewardModel;
        _costModel = costModel;
        _rewardCritic = rewardCritic;
        _costCritic = mode == RlMode.PpoLagrangian ? costCritic : null;
        _o = options;
        _samplePrompt = samplePrompt;
        _ptxData = ptxData;
        _rng = rng;
        _padId = padId;
        _eosId = eosId;
        actor.UseGradientCheckpointing(options.GradientCheckpointing);
        rewardCritic.Backbone.UseGradientCheckpointing(options.GradientCheckpointing);
        costCritic?.Backbone.UseGradientCheckpointing(options.GradientCheckpointing);
        _actorOptimizer = Ranks.NewOptimizer(actor, options.ActorLr, options.ActorWeightDecay);
        _rewardCriticOptimizer = Ranks.NewOptimizer(rewardCritic, options.CriticLr, options.CriticWeightDecay);
        if (_costCritic is not null)
            _costCriticOptimizer = Ranks.NewOptimizer(_costCritic, options.CriticLr, options.CriticWeightDecay);
        if (mode == RlMode.PpoLagrangian)
            Lagrange = new LagrangeMultiplier(options.LambdaInit, options.LambdaLr, options.Threshold, options.LambdaMax, options.EpisodeCostWindow);
    }

    /// <summary>The multiplier of PPO-Lagrangian (null in the other modes).</summary>
    public LagrangeMultiplier? Lagrange { get; }

    public int StepsDone { get; private set; }

    /// <summary>The data-parallel ranks: each samples the same global batch of prompts and generates, scores and
    /// trains on its own slice; λ sees the episode costs of the whole batch.</summary>
    public TrainingRanks Ranks { get; }

    public string Stage => _mode switch { RlMode.Ppo => "ppo", RlMode.PpoLagrangian => "ppo_lag", _ => "reward_shaping" };

    public int TotalSteps => _o.Steps;

    public string LossKey => "actor_loss";

    /// <summary>The optimisers by role ("actor", "reward_critic", and "cost_critic" for PPO-Lagrangian), for checkpoints.</summary>
    public IReadOnlyList<(string Name, AdamW Optimizer)> Optimizers =>
        _costCriticOptimizer is null
            ? [("actor", _actorOptimizer), ("reward_critic", _rewardCriticOptimizer)]
            : [("actor", _actorOptimizer), ("reward_critic", _rewardCriticOptimizer), ("cost_critic", _costCriticOptimizer)];

    /// <summary>Continues a resumed run after <paramref name="stepsDone"/> completed steps (the caller has restored the
    /// weights, optimisers, λ and random generator).</summary>
    public void ResumeAt(int stepsDone)
    {
        if (stepsDone < 0 || stepsDone > _o.Steps)
            throw new ArgumentOutOfRangeException(nameof(stepsDone), stepsDone, $"must be in [0, {_o.Steps}]");
        StepsDone = stepsDone;
    }

    /// <summary>Runs step <paramref name="step"/>, which must be the next one (<see cref="TrainingLoop"/>).</summary>
    public StepMetrics Run(int step)
    {
        if (step != StepsDone) ResumeAt(step);
        return Step();
    }

    /// <summary>One rollout and update; returns the step's metrics.</summary>
    public StepMetrics Step()
    {
        var rollout = SampleRollout();
        var experience = CollectExperience(rollout);
        var advantages = EstimateAdvantages(experience);
        double lambda = UpdateLambda(experience.Cost);
        var actorAdvantages = Lagrange is null ? advantages.Reward
            : CombinedAdvantage.Compute(advantages.Reward, advantages.Cost!, lambda);
        var losses = Update(experience, advantages, actorAdvantages);
        StepsDone++;
        return Metrics(rollout, experience, losses, lambda);
    }

    public void Dispose()
    {
        foreach (var (_, o) in Optimizers) o.Dispose();
    }
}
