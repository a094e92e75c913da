using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Losses;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

// The phases of one PPO step, in the order Step runs them.
public sealed partial class PpoTrainer
{
    /// <summary>What the rollout policy, the reference, the score models and the critics said about the sampled
    /// sequences, without gradients. Log-prob position t scores token t + 1; Start is the first response position.
    /// OldLogp, RefLogp, OldRewardValues, OldCostValues, Mask [B, L − 1]; Reward, Cost [B].</summary>
    private sealed record Experience(SequenceBatch Sequences, int Start, double[,] OldLogp, double[,] RefLogp, double[] Reward,
        double[] Cost, double[,] OldRewardValues, double[,]? OldCostValues, bool[,] Mask)
    {
        public int Positions => Sequences.Length - 1;
        public bool[,] ResponseMask => Batch.ColumnsFrom(Mask, Start);
    }

    /// <summary>GAE advantages and returns over the response positions [B, L − 1 − start]; the cost ones for PPO-Lagrangian.</summary>
    private sealed record Advantages(double[,] Reward, double[,] RewardReturns, double[,]? Cost, double[,]? CostReturns);

    private sealed record UpdateLosses(double Actor, double RewardCritic, double CostCritic, double Ptx);

    private RolloutBatch SampleRollout()
    {
        var global = Enumerable.Range(0, _o.BatchSize).Select(_ => _samplePrompt(_rng)).ToList();
        var (first, _) = Ranks.Slice(global.Count, "rl.batch_size");
        var prompts = Ranks.Mine(global, "rl.batch_size");
        using var phase = MemoryTags.InPhase("rollout");
        return Rollout.Generate(_actor, prompts, _o.MaxNewTokens,
            new SamplingOptions { Temperature = _o.Temperature, TopP = _o.TopP }, _rng, _padId, _eosId, first);
    }

    private Experience CollectExperience(RolloutBatch rollout)
    {
        var seq = rollout.Sequences;
        int b = seq.Batch, positions = seq.Length - 1;
        // Each model's forward runs in its own scope, so its activations die before the next model runs.
        using var phase = MemoryTags.InPhase("experience");
        using var noGrad = GradMode.NoGrad();
        var oldLogp = Forward(() => ToMatrix(PolicyOps.LogProbs(_actor, seq), b, positions));
        var refLogp = Forward(() => ToMatrix(ReferenceLogProbs(seq), b, positions));
        var reward = Forward(() => ScoreModel.EndScores(PolicyOps.Scores(_rewardModel, seq), seq.EndIndex).ToDoubleArray());
        var cost = Forward(() => ScoreModel.EndScores(PolicyOps.Scores(_costModel, seq), seq.EndIndex).ToDoubleArray());
        var rewardValues = Forward(() => ToMatrix(PolicyOps.Scores(_rewardCritic, seq).Narrow(1, 0, positions), b, positions));
        var costValues = _costCritic is null ? null
            : Forward(() => ToMatrix(PolicyOps.Scores(_costCritic, seq).Narrow(1, 0, positions), b, positions));
        var mask = new bool[b, positions];
        for (int i = 0; i < b; i++)
            for (int t = 0; t < positions; t++) mask[i, t] = seq.Mask[i * seq.Length + t + 1] != 0;
        return new Experience(seq, rollout.PromptWidth - 1, oldLogp, refLogp, reward, cost, rewardValues, costValues, mask);
    }

    private Advantages EstimateAdvantages(Experience e)
    {
        var score = _mode == RlMode.RewardShaping ? RewardShaping.Compute(e.Reward, e.Cost, _o.Nu) : e.Reward;
        var rewards = KlShapedSignals.Rewards(score, e.OldLogp, e.RefLogp, e.Mask, _o.KlCoeff, _o.ClipRangeScore);
        var (rewardAdvantages, rewardReturns) = Gae.Compute(e.OldRewardValues, rewards, e.Mask, e.Start, _o.Gamma, _o.GaeLambda);
        if (_costCritic is null) return new Advantages(rewardAdvantages, rewardReturns, null, null);
        var costs = KlShapedSignals.Costs(e.Cost, e.OldLogp, e.RefLogp, e.Mask, _o.KlCoeff, _o.ClipRangeScore);
        var (costAdvantages, costReturns) = Gae.Compute(e.OldCostValues!, costs, e.Mask, e.Start, _o.Gamma, _o.GaeLambda);
        return new Advantages(rewardAdvantages, rewardReturns, costAdvantages, costReturns);
    }

    /// <summary>PPO-Lagrangian: adds the episode costs of the whole global batch (every rank's, in batch order) to
    /// λ's window and updates λ; NaN in the other modes.</summary>
    private double UpdateLambda(double[] episodeCosts)
    {
        if (Lagrange is null) return double.NaN;
        Lagrange.AddEpisodeCosts(Ranks.Gather(episodeCosts));
        Lagrange.Update();
        return Lagrange.Lambda;
    }

    private UpdateLosses Update(Experience e, Advantages a, double[,] actorAdvantages)
    {
        var spanMask = e.ResponseMask;
        double actor = ActorStep(e, actorAdvantages, spanMask);
        double rewardCritic = CriticStep(_rewardCritic, _rewardCriticOptimizer, e, Batch.ColumnsFrom(e.OldRewardValues, e.Start),
            a.RewardReturns, spanMask);
        double costCritic = _costCritic is null ? double.NaN
            : CriticStep(_costCritic, _costCriticOptimizer!, e, Batch.ColumnsFrom(e.OldCostValues!, e.Start), a.CostReturns!, spanMask);
        return new UpdateLosses(actor, rewardCritic, costCritic, PtxStep());
    }

    private double ActorStep(Experience e, double[,] advantages, bool[,] spanMask)
    {
        using var phase = MemoryTags.InPhase("actor update");
        double value;
        using (new TensorScope())
        {
            var logp = PolicyOps.LogProbs(_actor, e.Sequences).Narrow(1, e.Start, e.Positions - e.Start);
            var loss = PpoLosses.ActorLoss(logp, Batch.ColumnsFrom(e.OldLogp, e.Start), advantages, spanMask, _o.ClipRangeRatio);
            value = BackwardShare(loss, spanMask, "actor loss");
        }
        GradientStep.Apply(_actorOptimizer, _actor, _o.ClipNorm, Ranks);
        return value;
    }

    private double CriticStep(ScoreModel critic, Nn.AdamW optimizer, Experience e, double[,] oldValues, double[,] returns, bool[,] spanMask)
    {
        using var phase = MemoryTags.InPhase("critic update");
        double value;
        using (new TensorScope())
        {
            var v = PolicyOps.Scores(critic, e.Sequences).Narrow(1, e.Start, e.Positions - e.Start);
            var loss = PpoLosses.CriticLoss(v, oldValues, returns, spanMask, _o.ClipRangeValue);
            value = BackwardShare(loss, spanMask, "critic loss");
        }
        GradientStep.Apply(optimizer, critic, _o.ClipNorm, Ranks);
        return value;
    }

    /// <summary>The optional pretraining (PTX) term: one SFT update of the actor scaled by ptx_coeff; NaN when off.</summary>
    private double PtxStep()
    {
        if (!(_o.PtxCoeff > 0) || _ptxData is not { Count: > 0 }) return double.NaN;
        double value;
        using (new TensorScope())
        {
            var global = Enumerable.Range(0, _o.BatchSize).Select(_ => _ptxData[_rng.NextInt(_ptxData.Count)]).ToList();
            var batch = Ranks.Mine(global, "rl.batch_size");
            var loss = SftTrainer.Loss(_actor, batch, _padId).Scale(_o.PtxCoeff * Ranks.ShareOf(batch.Sum(x => x.Response.Length)));
            value = Ranks.Sum(loss.Item());
            loss.Backward();
        }
        GradientStep.Apply(_actorOptimizer, _actor, _o.ClipNorm, Ranks);
        return value;
    }

    private StepMetrics Metrics(RolloutBatch rollout, Experience e, UpdateLosses losses, double lambda)
    {
        double kl = 0;
        int count = 0;
        for (int i = 0; i < e.Sequences.Batch; i++)
            for (int t = e.Start; t < e.Positions; t++)
                if (e.Mask[i, t]) { kl += e.OldLogp[i, t] - e.RefLogp[i, t]; count++; }
        // Global values: per-sequence quantities gathered in batch order, sums summed over the ranks.
        var values = new Dictionary<string, double>
        {
            ["reward"] = Ranks.Gather(e.Reward).Average(),
            ["cost"] = Ranks.Gather(e.Cost).Average(),
            ["kl"] = Ranks.Sum(kl) / System.Math.Max(Ranks.Sum(count), 1),
            ["actor_loss"] = losses.Actor,
            ["reward_critic_loss"] = losses.RewardCritic,
            ["response_length"] = Ranks.Gather(rollout.Responses.Select(r => (double)r.Length).ToArray()).Average(),
            ["tokens"] = Ranks.Sum(e.Sequences.Mask.Sum()),
        };
        if (Lagrange is not null)
        {
            values["lambda"] = lambda;
            values["episode_cost_mean"] = Lagrange.EpisodeCostMean;
            values["cost_critic_loss"] = losses.CostCritic;
        }
        if (!double.IsNaN(losses.Ptx)) values["ptx_loss"] = losses.Ptx;
        return new StepMetrics(Stage, StepsDone, _o.Steps, values);
    }

    /// <summary>Back-propagates this rank's share of a masked-mean loss over its rows (the whole loss in a single
    /// process) and returns the global loss, stopping on a non-finite one (<paramref name="what"/> names it).</summary>
    private double BackwardShare(Tensor loss, bool[,] spanMask, string what)
    {
        if (!Ranks.IsSingle) loss = loss.Scale(Ranks.ShareOf(RowsWithValid(spanMask)));
        double value = Ranks.Sum(loss.Item());
        TrainingGuard.CheckFinite(what, value, StepsDone);
        loss.Backward();
        return value;
    }

    /// <summary>Rows of a mask with at least one valid position (the rows a masked mean averages over).</summary>
    private static int RowsWithValid(bool[,] mask)
    {
        int rows = 0;
        for (int i = 0; i < mask.GetLength(0); i++)
            for (int t = 0; t < mask.GetLength(1); t++)
                if (mask[i, t]) { rows++; break; }
        return rows;
    }

    private static T Forward<T>(Func<T> forward)
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

    private static double[,] ToMatrix(Tensor t, int rows, int cols)
    {
        var flat = t.ToDoubleArray();
        var m = new double[rows, cols];
        Buffer.BlockCopy(flat, 0, m, 0, flat.Length * sizeof(double));
        return m;
    }
}
