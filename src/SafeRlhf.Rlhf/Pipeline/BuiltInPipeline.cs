using System.Diagnostics;
using SafeRlhf.Llama;
using SafeRlhf.Rlhf.BuiltInTask;
using SafeRlhf.Rlhf.Evaluation;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Rlhf.Pipeline;

/// <summary>The full Safe-RLHF pipeline on the built-in task: SFT a tiny LLaMA, train the reward and cost models,
/// then PPO, PPO-Lagrangian and reward shaping from the same SFT policy with the same budget, and evaluate all
/// policies on held-out prompts.</summary>
public sealed class BuiltInPipeline(PipelineOptions options, Device device)
{
    /// <summary>Called after every training step (progress display and metrics log).</summary>
    public Action<StepMetrics>? OnStep { get; init; }
    /// <summary>Called when a stage starts or finishes, with a line of text.</summary>
    public Action<string>? OnMessage { get; init; }
    /// <summary>The ranks of a data-parallel job: every rank runs the pipeline and each training stage splits its
    /// batches over them (evaluation runs whole on every rank). A single process by default.</summary>
    public ICommunicator Comm { get; init; } = LocalCommunicator.Instance;

    private TrainingRanks Ranks(bool shardOptimizerState) =>
        TrainingRanks.Of(Comm, shardOptimizerState);

    public PipelineSummary Run(CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var rng = new Rng(options.Seed);
        var world = new SafetyWorld(options.HarmfulShare);
        var tok = world.Tokenizer;
        int pad = WordTokenizer.PadId, eos = WordTokenizer.EosId;
        var config = options.ModelConfig(tok.VocabSize);

        int[] PromptIds(string prompt) => [WordTokenizer.BosId, .. tok.Encode(prompt)];
        PairExample Pair(PreferencePair p) => new(
            [.. PromptIds(p.Prompt), .. tok.Encode(p.Response0), eos],
            [.. PromptIds(p.Prompt), .. tok.Encode(p.Response1), eos],
            p.BetterId, p.SaferId, p.Safe0, p.Safe1);

        // ---- data ----
        var sftData = world.SftExamples(options.SftExamples, rng.Fork())
            .Select(e => new SftTrainer.Example(PromptIds(e.Prompt), [.. tok.Encode(e.Response), eos])).ToList();
        var pairs = world.PreferencePairs(options.PreferencePairs, rng.Fork(), options.LabelNoise, heldOut: false).Select(Pair).ToList();
        var heldOutPairs = world.PreferencePairs(options.HeldOutPairs, rng.Fork(), labelNoise: 0, heldOut: true).Select(Pair).ToList();
        var evalRng = rng.Fork();
        var evalRequests = Enumerable.Range(0, options.EvalPrompts).Select(_ => world.SampleRequest(evalRng, heldOut: true)).ToList();
        var evalPrompts = evalRequests.Select(r => PromptIds(r.Prompt)).ToList();

        // ---- SFT ----
        OnMessage?.Invoke($"SFT: tiny LLaMA (dim {config.Dim}, {config.NLayers} layers, vocab {config.VocabSize}) on {sftData.Count} demonstrations");
        using var sft = LlamaModel.Create(config, device, rng.Fork());
        sft.KvCacheStorage = options.KvCache;
        double sftLoss = SftTrainer.Train(sft, sftData, options.Sft, rng.Fork(), pad, new TrainerState(), OnStep, cancel,
            Ranks(options.Sft.ShardOptimizerState));

        // ---- reward and cost models, initialised from the SFT backbone ----
        OnMessage?.Invoke($"reward model on {pairs.Count} helpfulness pairs");
        using var rewardModel = NewScoreModel(sft, config, rng);
        ScoreTrainer.Train(rewardModel, pairs, ScoreTrainer.Kind.Reward, options.Reward, rng.Fork(), pad, new TrainerState(),
            onStep: OnStep, cancel: cancel, ranks: Ranks(options.Reward.ShardOptimizerState));
        var (rmAccuracy, _) = ScoreTrainer.Evaluate(rewardModel, heldOutPairs, ScoreTrainer.Kind.Reward, pad);

        OnMessage?.Invoke($"cost model on {pairs.Count} harmlessness pairs");
        using var costModel = NewScoreModel(sft, config, rng);
        ScoreTrainer.Train(costModel, pairs, ScoreTrainer.Kind.Cost, options.Cost, rng.Fork(), pad, new TrainerState(),
            onStep: OnStep, cancel: cancel, ranks: Ranks(options.Cost.ShardOptimizerState));
        var (cmAccuracy, cmSign) = ScoreTrainer.Evaluate(costModel, heldOutPairs, ScoreTrainer.Kind.Cost, pad);
        OnMessage?.Invoke($"held-out accuracy: reward {rmAccuracy:P1}, cost {cmAccuracy:P1}, cost sign {cmSign:P1}");
        var scoresByKind = KindScores.Measure(world, rewardModel, costModel, new Rng(options.Seed + 2000), pad, eos);

        // ---- RL from the same SFT policy ----
        int[] SamplePrompt(Rng r) => PromptIds(world.SampleRequest(r, heldOut: false).Prompt);
        var policies = new Dictionary<string, PolicySummary>();
        var samples = new Dictionary<string, IReadOnlyList<string>>();
        var sampling = new SamplingOptions { Temperature = options.Rl.Temperature, TopP = options.Rl.TopP };
        void Score(string name, LlamaModel policy)
        {
            var scores = PolicyEvaluator.Evaluate(policy, rewardModel, costModel, evalPrompts, options.Rl.MaxNewTokens, sampling,
                new Rng(options.Seed + 1000), pad, eos);
            policies[name] = Summarise(scores, evalRequests, tok);
            samples[name] = Enumerable.Range(0, System.Math.Min(8, evalRequests.Count))
                .Select(i => $"{evalRequests[i].Prompt} {tok.Decode(scores.Responses[i])}").ToList();
        }
        Score("sft", sft);
        var lambdaTrace = new List<double>();
        // The SFT policy (the reference) and the reward and cost models stay frozen through every RL run.
        Freeze(sft); Freeze(rewardModel); Freeze(costModel);
        foreach (var (name, mode) in new[] { ("ppo", RlMode.Ppo), ("ppo_lag", RlMode.PpoLagrangian), ("reward_shaping", RlMode.RewardShaping) })
        {
            OnMessage?.Invoke($"{name}: {options.Rl.Steps} steps × {options.Rl.BatchSize} prompts");
            using var actor = LlamaModel.Create(config, device, new Rng(0));
            actor.CopyFrom(sft);
            actor.KvCacheStorage = options.KvCache;
            using var rewardCritic = NewScoreModel(sft, config, rng);
            rewardCritic.CopyFrom(rewardModel);
            using var costCritic = NewScoreModel(sft, config, rng);
            costCritic.CopyFrom(costModel);
            using var trainer = new PpoTrainer(mode, actor, sft, rewardModel, costModel, rewardCritic, costCritic, options.Rl,
                SamplePrompt, new Rng(options.Seed + 7), pad, eos, sftData, Ranks(options.Rl.ShardOptimizerState));
            TrainingLoop.Run(trainer, new TrainerState(), metrics =>
            {
                if (mode == RlMode.PpoLagrangian) lambdaTrace.Add(metrics.Values["lambda"]);
                OnStep?.Invoke(metrics);
            }, cancel);
            Score(name, actor);
        }
        return new PipelineSummary(new SftSummary(sftLoss), new RewardModelSummary(rmAccuracy), new CostModelSummary(cmAccuracy, cmSign),
            policies, options.Rl.Threshold, lambdaTrace, clock.Elapsed.TotalSeconds, samples, scoresByKind);
    }

    private ScoreModel NewScoreModel(LlamaModel sft, LlamaConfig config, Rng rng)
    {
        var backbone = LlamaModel.Create(config, device, new Rng(0));
        backbone.CopyFrom(sft);
        return ScoreModel.Create(backbone, rng.Fork());
    }

    private static void Freeze(Nn.Module m)
    {
        foreach (var (_, p) in m.NamedParameters()) p.RequiresGrad = false;
    }

    private static PolicySummary Summarise(PolicyScores s, IReadOnlyList<Request> requests, WordTokenizer tok)
    {
        int unsafeCount = 0, benign = 0, benignHelpful = 0, harmful = 0, harmfulRefused = 0, harmfulRedirected = 0;
        for (int i = 0; i < requests.Count; i++)
        {
            var kind = SafetyWorld.Classify(requests[i], tok.Decode(s.Responses[i]));
            if (SafetyWorld.IsUnsafe(requests[i], kind)) unsafeCount++;
            if (requests[i].Harmful)
            {
                harmful++;
                if (kind == ResponseKind.Refusal) harmfulRefused++;
                if (kind == ResponseKind.Redirect) harmfulRedirected++;
            }
            else { benign++; if (kind == ResponseKind.Detailed) benignHelpful++; }
        }
        return new PolicySummary(s.MeanReward, s.MeanCost, s.UnsafeRate, unsafeCount / (double)requests.Count,
            benign == 0 ? double.NaN : benignHelpful / (double)benign, harmful == 0 ? double.NaN : harmfulRefused / (double)harmful,
            harmful == 0 ? double.NaN : harmfulRedirected / (double)harmful);
    }
}
