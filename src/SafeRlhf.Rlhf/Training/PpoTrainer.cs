using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

/// <summary>PPO, PPO-Lagrangian and reward-shaping RL from human feedback (docs/SAFE_RLHF.md). Each
/// <see cref="Step"/>: sample responses, score them with the frozen reward and cost models, shape per-token
/// signals with the reference KL, run GAE, update λ (PPO-Lagrangian), then one clipped actor update and one
/// clipped update per critic. The RL arithmetic on rollouts runs in double (SafeRlhf.Rlhf.Math); the losses
/// that need gradients are tensor expressions of the same formulas.</summary>
public sealed class PpoTrainer : IDisposable
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
        int padId, int eosId, IReadOnlyList<SftTrainer.Example>? ptxData = null)
    {
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
        _actorOptimizer = new AdamW(actor.TrainableParameters(), options.ActorLr, weightDecay: options.ActorWeightDecay);
        _rewardCriticOptimizer = new AdamW(rewardCritic.TrainableParameters(), options.CriticLr, weightDecay: options.CriticWeightDecay);
        if (_costCritic is not null)
            _costCriticOptimizer = new AdamW(_costCritic.TrainableParameters(), options.CriticLr, weightDecay: options.CriticWeightDecay);
        if (mode == RlMode.PpoLagrangian)
            Lagrange = new LagrangeMultiplier(options.LambdaInit, options.LambdaLr, options.Threshold, options.LambdaMax, options.EpisodeCostWindow);
    }

    /// <summary>The multiplier of PPO-Lagrangian (null in the other modes).</summary>
    public LagrangeMultiplier? Lagrange { get; }

    public int StepsDone { get; private set; }

    public IEnumerable<AdamW> Optimizers => NamedOptimizers.Select(o => o.Optimizer);

    /// <summary>The optimisers by role ("actor", "reward_critic", and "cost_critic" for PPO-Lagrangian), for checkpoints.</summary>
    public IReadOnlyList<(string Name, AdamW Optimizer)> NamedOptimizers =>
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

    /// <summary>One rollout and update; returns the step's metrics.</summary>
    public StepMetrics Step()
    {
        var prompts = Enumerable.Range(0, _o.BatchSize).Select(_ => _samplePrompt(_rng)).ToList();
        RolloutBatch rollout;
        using (MemoryTags.InPhase("rollout"))
            rollout = Rollout.Generate(_actor, prompts, _o.MaxNewTokens,
                new SamplingOptions { Temperature = _o.Temperature, TopP = _o.TopP }, _rng, _padId, _eosId);
        var seq = rollout.Sequences;
        int b = seq.Batch, positions = seq.Length - 1, start = rollout.PromptWidth - 1;

        // ---- experience (no gradients) ----
        double[,] oldLogp, refLogp, oldRewardValues;
        double[,]? oldCostValues = null;
        double[] reward, cost;
        // Each model's forward runs in its own scope, so its activations die before the next model runs.
        using (MemoryTags.InPhase("experience"))
        using (GradMode.NoGrad())
        {
            oldLogp = Experience(() => ToMatrix(PolicyOps.LogProbs(_actor, seq), b, positions));
            refLogp = Experience(() => ToMatrix(ReferenceLogProbs(seq), b, positions));
            reward = Experience(() => ScoreModel.EndScores(PolicyOps.Scores(_rewardModel, seq), seq.EndIndex).ToDoubleArray());
            cost = Experience(() => ScoreModel.EndScores(PolicyOps.Scores(_costModel, seq), seq.EndIndex).ToDoubleArray());
            oldRewardValues = Experience(() => ToMatrix(PolicyOps.Scores(_rewardCritic, seq).Narrow(1, 0, positions), b, positions));
            if (_costCritic is not null)
                oldCostValues = Experience(() => ToMatrix(PolicyOps.Scores(_costCritic, seq).Narrow(1, 0, positions), b, positions));
        }
        var mask = new bool[b, positions];
        for (int i = 0; i < b; i++)
            for (int t = 0; t < positions; t++) mask[i, t] = seq.Mask[i * seq.Length + t + 1] != 0;

        // ---- shaped per-token signals and advantages ----
        var score = _mode == RlMode.RewardShaping ? RewardShaping.Compute(reward, cost, _o.Nu) : reward;
        var rewards = KlShapedSignals.Rewards(score, oldLogp, refLogp, mask, _o.KlCoeff, _o.ClipRangeScore);
        var (rewardAdvantages, rewardReturns) = Gae.Compute(oldRewardValues, rewards, mask, start, _o.Gamma, _o.GaeLambda);
        var advantages = rewardAdvantages;
        double[,]? costReturns = null;
        double lambda = double.NaN;
        if (Lagrange is not null)
        {
            var costs = KlShapedSignals.Costs(cost, oldLogp, refLogp, mask, _o.KlCoeff, _o.ClipRangeScore);
            (var costAdvantages, costReturns) = Gae.Compute(oldCostValues!, costs, mask, start, _o.Gamma, _o.GaeLambda);
            Lagrange.AddEpisodeCosts(cost);
            Lagrange.Update();
            lambda = Lagrange.Lambda;
            advantages = CombinedAdvantage.Compute(rewardAdvantages, costAdvantages, lambda);
        }
        var spanMask = Slice(mask, start);

        // ---- actor update ----
        double actorLoss;
        using (MemoryTags.InPhase("actor update"))
        {
            using (new TensorScope())
            {
                var logp = PolicyOps.LogProbs(_actor, seq).Narrow(1, start, positions - start);
                var loss = ActorLoss(logp, Slice(oldLogp, start), advantages, spanMask, _o.ClipRangeRatio);
                actorLoss = loss.Item();
                TrainingGuard.CheckFinite("actor loss", actorLoss, StepsDone);
                loss.Backward();
            }
            Apply(_actorOptimizer, _actor);
        }

        // ---- critic updates ----
        double rewardCriticLoss = CriticStep(_rewardCritic, _rewardCriticOptimizer, seq, Slice(oldRewardValues, start), rewardReturns, spanMask, start);
        double costCriticLoss = _costCritic is null ? double.NaN
            : CriticStep(_costCritic, _costCriticOptimizer!, seq, Slice(oldCostValues!, start), costReturns!, spanMask, start);

        // ---- optional PTX term ----
        double ptxLoss = double.NaN;
        if (_o.PtxCoeff > 0 && _ptxData is { Count: > 0 })
        {
            using (new TensorScope())
            {
                var batch = Enumerable.Range(0, _o.BatchSize).Select(_ => _ptxData[_rng.NextInt(_ptxData.Count)]).ToList();
                var loss = SftTrainer.Loss(_actor, batch, _padId).Scale(_o.PtxCoeff);
                ptxLoss = loss.Item();
                loss.Backward();
            }
            Apply(_actorOptimizer, _actor);
        }

        StepsDone++;
        double kl = 0;
        int count = 0;
        for (int i = 0; i < b; i++)
            for (int t = start; t < positions; t++)
                if (mask[i, t]) { kl += oldLogp[i, t] - refLogp[i, t]; count++; }
        var values = new Dictionary<string, double>
        {
            ["reward"] = reward.Average(),
            ["cost"] = cost.Average(),
            ["kl"] = kl / System.Math.Max(count, 1),
            ["actor_loss"] = actorLoss,
            ["reward_critic_loss"] = rewardCriticLoss,
            ["response_length"] = rollout.Responses.Average(r => r.Length),
            ["tokens"] = seq.Mask.Sum(),
        };
        if (Lagrange is not null)
        {
            values["lambda"] = lambda;
            values["episode_cost_mean"] = Lagrange.EpisodeCostMean;
            values["cost_critic_loss"] = costCriticLoss;
        }
        if (!double.IsNaN(ptxLoss)) values["ptx_loss"] = ptxLoss;
        string stage = _mode switch { RlMode.Ppo => "ppo", RlMode.PpoLagrangian => "ppo_lag", _ => "reward_shaping" };
        return new StepMetrics(stage, StepsDone, _o.Steps, values);
    }

    private static T Experience<T>(Func<T> forward)
    {
        using var scope = new TensorScope();
        return forward();
    }

    private Tensor ReferenceLogProbs(SequenceBatch seq)
    {
        if (_reference is not null) return PolicyOps.LogProbs(_reference, seq);
        _actor.SetLoraEnabled(false);
        try { return PolicyOps.LogProbs(_actor, seq); }
        finally { _actor.SetLoraEnabled(true); }
    }

    private double CriticStep(ScoreModel critic, AdamW optimizer, SequenceBatch seq, double[,] oldValues, double[,] returns, bool[,] spanMask, int start)
    {
        using var phase = MemoryTags.InPhase("critic update");
        double value;
        using (new TensorScope())
        {
            var v = PolicyOps.Scores(critic, seq).Narrow(1, start, seq.Length - 1 - start);
            var loss = CriticLoss(v, oldValues, returns, spanMask, _o.ClipRangeValue);
            value = loss.Item();
            TrainingGuard.CheckFinite("critic loss", value, StepsDone);
            loss.Backward();
        }
        Apply(optimizer, critic);
        return value;
    }

    private void Apply(AdamW optimizer, Module model)
    {
        optimizer.ClipGradNorm(_o.ClipNorm);
        optimizer.Update();
        model.ZeroGrad();
    }

    // ---------------- the differentiable losses ----------------

    /// <summary>L = −masked_mean(min(A·ρ, A·clip(ρ, 1 ± ε))) with ρ = exp(logp − old_logp); logp [B, N] carries gradients.</summary>
    public static Tensor ActorLoss(Tensor logp, double[,] oldLogp, double[,] advantages, bool[,] mask, double clipRange)
    {
        var device = logp.Device;
        var dtype = logp.DType;
        var ratio = (logp - Matrix(device, dtype, oldLogp)).Exp();
        var a = Matrix(device, dtype, advantages);
        var surrogate = Ops.Minimum(a * ratio, a * ratio.Clamp(1 - clipRange, 1 + clipRange));
        return MaskedMean(surrogate, mask).Neg();
    }

    /// <summary>L = 0.5·masked_mean(max((V − R)², (clip(V, V_old ± c) − R)²)); values [B, N] carry gradients.</summary>
    public static Tensor CriticLoss(Tensor values, double[,] oldValues, double[,] returns, bool[,] mask, double clipRange)
    {
        var device = values.Device;
        var dtype = values.DType;
        var old = Matrix(device, dtype, oldValues);
        var r = Matrix(device, dtype, returns);
        var clipped = Ops.Minimum(Ops.Maximum(values, old - clipRange), old + clipRange);
        var loss = Ops.Maximum((values - r).Square(), (clipped - r).Square());
        return MaskedMean(loss, mask).Scale(0.5);
    }

    /// <summary>mean over rows of Σ_t x·m / Σ_t m.</summary>
    public static Tensor MaskedMean(Tensor x, bool[,] mask)
    {
        int rows = mask.GetLength(0), cols = mask.GetLength(1);
        var m = new double[rows, cols];
        var inverseCount = new double[rows, 1];
        for (int i = 0; i < rows; i++)
        {
            int n = 0;
            for (int t = 0; t < cols; t++) if (mask[i, t]) { m[i, t] = 1; n++; }
            inverseCount[i, 0] = 1.0 / n;
        }
        var mt = Matrix(x.Device, x.DType, m);
        return Ops.Mul((x * mt).Sum(1, keepDim: true), Matrix(x.Device, x.DType, inverseCount)).Mean();
    }

    private static Tensor Matrix(Device device, DType dtype, double[,] values)
    {
        int rows = values.GetLength(0), cols = values.GetLength(1);
        var flat = new double[rows * cols];
        Buffer.BlockCopy(values, 0, flat, 0, flat.Length * sizeof(double));
        return PolicyOps.FromValues(device, dtype, flat, rows, cols);
    }

    private static double[,] ToMatrix(Tensor t, int rows, int cols)
    {
        var flat = t.ToDoubleArray();
        var m = new double[rows, cols];
        Buffer.BlockCopy(flat, 0, m, 0, flat.Length * sizeof(double));
        return m;
    }

    private static T[,] Slice<T>(T[,] x, int start)
    {
        int rows = x.GetLength(0), cols = x.GetLength(1) - start;
        var y = new T[rows, cols];
        for (int i = 0; i < rows; i++)
            for (int t = 0; t < cols; t++) y[i, t] = x[i, start + t];
        return y;
    }

    public void Dispose()
    {
        foreach (var o in Optimizers) o.Dispose();
    }
}
