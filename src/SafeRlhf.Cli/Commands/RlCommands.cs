using SafeRlhf.Cli.Distributed;
using System.CommandLine;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf ppo|ppo-lag|reward-shaping|eval|arena`: RL fine-tuning against reward and cost models written by
/// `saferlhf reward`/`cost`, and evaluation of policies with them. RL runs write metrics.jsonl (reward, cost, λ, KL per
/// step), result.json and the final actor (actor.safetensors, loadable by `saferlhf generate`).</summary>
public static partial class RlCommands
{
    private const string RlConfigKeys = "Config: actor, reward_model, cost_model (from `saferlhf reward`/`cost`), data (PKU-SafeRLHF prompts), " +
        "tokenizer, chat_template, score_base, max_prompt_length, seed, checkpoint_every, stop_after_steps, rl.*, " +
        "lora.{rank, alpha, targets, quantize} (adapters for the actor and critics; their files hold the adapters and name the base), ptx_data and ptx_max_length (with rl.ptx_coeff). Checkpoints hold the actor, the critics, " +
        "the optimisers, λ and the random state; --resume continues with the same losses as an uninterrupted run (from any folder; " +
        "--set rl.steps=N extends a finished run); one is saved every checkpoint_every steps (default 50), at stop_after_steps (once), " +
        "at the end and on Ctrl-C or SIGTERM. " + ChatTemplates.Help + ".";

    public static Command Ppo() => CreateRl("ppo", RlMode.Ppo,
        $"PPO of a policy against a reward model (one critic; the cost model is only reported). {RlConfigKeys}");

    public static Command PpoLag() => CreateRl("ppo-lag", RlMode.PpoLagrangian,
        $"Safe RLHF: PPO-Lagrangian with reward and cost critics and a learned multiplier λ. {RlConfigKeys}");

    public static Command RewardShaping() => CreateRl("reward-shaping", RlMode.RewardShaping,
        $"PPO on the shaped reward R − ν·C with a fixed ν (rl.nu). {RlConfigKeys}");

    public static Command Eval()
    {
        var (command, config, set, @out, device, quiet) = Skeleton("eval",
            "Score a policy's answers to prompts with the reward and cost models: mean reward, mean cost, unsafe rate (cost > 0), " +
            "deciles; with 'pairs', the reward/cost models' ranking and sign accuracy. Config: policy, reward_model, cost_model, data, pairs, " +
            "tokenizer, chat_template, score_base, max_prompt_length, max_new_tokens, temperature, top_p, max_prompts, batch_size, max_length, seed. " +
            ChatTemplates.Help);
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            var c = Load(parse, config, set, new EvalConfig(), "'policy', 'reward_model', 'cost_model' and 'data'");
            return RunEval(c, device.Create(parse), parse.GetValue(@out), parse.GetValue(quiet));
        }));
        return command;
    }

    public static Command Arena()
    {
        var (command, config, set, @out, device, quiet) = Skeleton("arena",
            "Two policies answer the same prompts with the same seed; counts of better/worse × safe/unsafe (safe = cost ≤ 0) " +
            "for the first against the second, and win rates. Config: policy_a, policy_b, reward_model, cost_model, data, tokenizer, " +
            "chat_template, score_base, max_prompt_length, max_new_tokens, temperature, top_p, max_prompts, batch_size, seed. " + ChatTemplates.Help);
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            var c = Load(parse, config, set, new ArenaConfig(), "'policy_a', 'policy_b', 'reward_model', 'cost_model' and 'data'");
            return RunArena(c, device.Create(parse), parse.GetValue(@out), parse.GetValue(quiet));
        }));
        return command;
    }

    // ---------------- command plumbing ----------------

    /// <summary>`--device`, `--threads` and `--matmul-inputs` of one command.</summary>
    private sealed record DeviceOptions(Option<string> Device, Option<int> Threads, Option<string> MatMulInputs)
    {
        public Device Create(ParseResult parse) =>
            DeviceFactory.Create(parse.GetValue(Device)!, parse.GetValue(Threads), parse.GetValue(MatMulInputs)!);
    }

    private static (Command, Option<string?>, Option<string[]>, Option<string?>, DeviceOptions, Option<bool>) Skeleton(string name, string description)
    {
        var configOption = CommonOptions.Config();
        var setOption = CommonOptions.Set();
        var outOption = new Option<string?>("--out") { Description = $"Run folder (default: runs/{name}-<time>)" };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var matmulOption = CommonOptions.MatMulInputs();
        var quietOption = CommonOptions.Quiet();
        var command = new Command(name, description) { configOption, setOption, outOption, deviceOption, threadsOption, matmulOption, quietOption };
        return (command, configOption, setOption, outOption, new DeviceOptions(deviceOption, threadsOption, matmulOption), quietOption);
    }

    private static T Load<T>(ParseResult parse, Option<string?> config, Option<string[]> set, T defaults, string required) where T : RlInputsConfig
    {
        string? file = parse.GetValue(config) ?? throw new CliException($"--config: required (a JSON file with at least {required})");
        var c = ConfigLoader.Load(defaults, file, parse.GetValue(set) ?? []);
        c.Validate();
        return c;
    }

    private static Command CreateRl(string name, RlMode mode, string description)
    {
        var (command, config, set, @out, device, quiet) = Skeleton(name, description);
        var resumeOption = CommonOptions.Resume();
        command.Options.Add(resumeOption);
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            string? resume = parse.GetValue(resumeOption);
            var (outPath, configFile) = CommonOptions.ResolveResume(resume, parse.GetValue(@out), parse.GetValue(config),
                "'actor', 'reward_model', 'cost_model' and 'data'");
            var c = ConfigLoader.Load(new RlConfig(), configFile, parse.GetValue(set) ?? []).WithAbsolutePaths();
            c.Validate();
            return RunRl(name, mode, c, device.Create(parse), outPath, resume is not null, parse.GetValue(quiet));
        }));
        return command;
    }

    // ---------------- ppo / ppo-lag / reward-shaping ----------------

    private const string RewardCriticFile = "reward_critic.safetensors";
    private const string CostCriticFile = "cost_critic.safetensors";

    /// <summary>The models of an RL run, disposed together.</summary>
    private sealed class RlModelSet : IDisposable
    {
        public required WeightFile ActorWeights { get; init; }
        public required FrozenWeightCache Shared { get; init; }
        public required LlamaModel Actor { get; init; }
        public required WeightFile? ScoreBase { get; init; }
        public required ScoreModel RewardModel { get; init; }
        public required ScoreModel CostModel { get; init; }
        public required ScoreModel RewardCritic { get; init; }
        public required ScoreModel? CostCritic { get; init; }
        public required LlamaModel? Reference { get; init; }

        public void Dispose()
        {
            foreach (var d in new IDisposable?[] { Reference, CostCritic, RewardCritic, CostModel, RewardModel, ScoreBase, Actor, Shared, ActorWeights })
                d?.Dispose();
        }
    }

    private static RlModelSet LoadRlModels(RlMode mode, RlConfig config, Device device, Rng rng)
    {
        var actorWeights = StageData.OpenModel(config.Actor);
        bool actorHasAdapters = LlamaCheckpoint.HasAdapters(actorWeights);
        // Under LoRA the actor, the reward and cost models and the critics hold one copy of each frozen base matrix.
        var shared = new FrozenWeightCache();
        var actor = StageData.Build(actorWeights, device, config.Lora, shared);
        actor.KvCacheStorage = config.KvCacheStorage();
        var scoreBase = config.ScoreBase is null ? null : StageData.OpenModel(config.ScoreBase);
        var baseWeights = scoreBase ?? actorWeights;
        var models = new RlModelSet
        {
            ActorWeights = actorWeights, Shared = shared, Actor = actor, ScoreBase = scoreBase,
            RewardModel = RlModels.LoadScoreModel("reward_model", config.RewardModel, baseWeights, device, shared: shared),
            CostModel = RlModels.LoadScoreModel("cost_model", config.CostModel, baseWeights, device, shared: shared),
            RewardCritic = RlModels.LoadScoreModel("reward_model", config.RewardModel, baseWeights, device, trainable: true, shared: shared),
            CostCritic = mode == RlMode.PpoLagrangian
                ? RlModels.LoadScoreModel("cost_model", config.CostModel, baseWeights, device, trainable: true, shared: shared)
                : null,
            // The reference policy: the actor with its fresh adapters switched off, else a frozen copy of the actor.
            Reference = config.Lora is not null && !actorHasAdapters ? null : StageData.Build(actorWeights, device),
        };
        if (models.Reference is not null)
            foreach (var (_, p) in models.Reference.NamedParameters()) p.RequiresGrad = false;
        if (config.Lora is { } lora)
        {
            var loraRng = rng.Fork();
            if (!actorHasAdapters) lora.Apply(actor, loraRng);
            foreach (var critic in new[] { models.RewardCritic, models.CostCritic })
                if (critic is not null && !critic.Backbone.NamedParameters().Any(p => p.Name.Contains(".lora.", StringComparison.Ordinal)))
                    lora.Apply(critic.Backbone, loraRng);
        }
        return models;
    }

    private static int RunRl(string name, RlMode mode, RlConfig config, Device device, string? outPath, bool resuming, bool quiet)
    {
        // Fail on a missing score model before the (slow) model loading.
        RlModels.ResolveScoreFile("reward_model", config.RewardModel);
        RlModels.ResolveScoreFile("cost_model", config.CostModel);
        var rng = new Rng(config.Seed);
        using var m = LoadRlModels(mode, config, device, rng);
        var o = config.Rl;
        string tokenizerFile = StageData.TokenizerSource(config.Tokenizer, m.ActorWeights, m.Actor.Config);
        var tokenizer = StageData.Tokenizer(config.Tokenizer, m.ActorWeights, m.Actor.Config);
        if (config.MaxPromptLength + o.MaxNewTokens > m.Actor.Config.SeqLen)
            throw new CliException($"config: 'max_prompt_length' + 'rl.max_new_tokens' = {config.MaxPromptLength + o.MaxNewTokens} " +
                                   $"exceeds the actor's context of {m.Actor.Config.SeqLen} tokens");
        var (prompts, _, skipped) = RlModels.Prompts(config.Data, tokenizer, config.MaxPromptLength, config.Template());
        if (config.PtxData is not null && config.PtxMaxLength > m.Actor.Config.SeqLen)
            throw new CliException($"config: 'ptx_max_length' {config.PtxMaxLength} exceeds the actor's context of {m.Actor.Config.SeqLen} tokens");
        var ptx = config.PtxData is null ? null : StageData.Sft(config.PtxData, tokenizer, config.PtxMaxLength, config.Template()).Examples;
        var ranks = ProcessRanks.Training(o.ShardOptimizerState);
        using var trainer = new PpoTrainer(mode, m.Actor, m.Reference, m.RewardModel, m.CostModel, m.RewardCritic, m.CostCritic, o,
            r => prompts[r.NextInt(prompts.Count)], rng, tokenizer.EosId, tokenizer.EosId, ptx, ranks);

        var session = new TrainingSession(name, RunFolder.Create(outPath, name),
            new CheckpointSettings(config.CheckpointEvery, config.StopAfterSteps, o.Steps, "rl.steps"), rng, quiet, ranks);
        var weights = new List<(string, Module)> { (RunCheckpoints.ModelFile, m.Actor), (RewardCriticFile, m.RewardCritic) };
        if (m.CostCritic is not null) weights.Add((CostCriticFile, m.CostCritic));
        session.Open(resuming, weights);
        // An actor with adapters is saved as its adapters and the reference of the base they belong to.
        var actorBase = SelfContained.BaseOf(m.ActorWeights, config.Lora);
        SelfContained.CheckResumedBase(session, actorBase);
        if (mode == RlMode.PpoLagrangian) session.CostThreshold = o.Threshold;
        var history = ResumeRl(session, trainer);
        session.Run.SaveConfig(config);

        var models = weights.Select(w => new CheckpointModel(w.Item1, w.Item2 is LlamaModel actor
            ? path => SaveActor(actor, path, name, config.ChatTemplate, actorBase)
            : path => ModuleFiles.Save(w.Item2, path, CriticMetadata(name, config.ScoreBase ?? config.Actor)))).ToList();
        var extras = SelfContained.Files(name, tokenizerFile, m.Actor.Config, config.Lora, actorBase);
        using var stopAfter = new CancellationTokenSource();
        var state = session.NewState(models, extras, stopAfter,
            () => trainer.Lagrange is { } l ? new LagrangeState(l.LogLambda, l.Window.ToArray()) : null);
        if (!quiet)
        {
            Console.WriteLine(SelfContained.Summary(name, m.Actor, config.Lora));
            Console.WriteLine($"{name}: {prompts.Count} prompts from {config.Data}{(skipped > 0 ? $" ({skipped} longer than max_prompt_length skipped)" : "")}, " +
                              $"{session.ResumeNote}{o.Steps} steps of {o.BatchSize} rollouts on {device.Name}; run folder {session.Run.Path}");
        }
        if (session.Train(state, stopAfter, (s, onStep, cancel) => TrainingLoop.Run(trainer, s, metrics =>
            {
                history.Add(metrics.Values);
                onStep(metrics);
            }, cancel)) is { } code)
            return code;
        return FinishRl(name, mode, session, path => SaveActor(m.Actor, path, name, config.ChatTemplate, actorBase), device, prompts.Count,
            history, quiet);
    }

    /// <summary>On a resumed run: λ from the checkpoint and the metrics of the steps done; empty on a fresh run.</summary>
    private static List<IReadOnlyDictionary<string, double>> ResumeRl(TrainingSession session, PpoTrainer trainer)
    {
        if (session.Resumed is not { } checkpoint) return [];
        if (trainer.Lagrange is { } lagrange)
        {
            var saved = checkpoint.State.Lagrange
                        ?? throw new CliException($"corrupt checkpoint: {checkpoint.Folder}: trainer state has no λ for a PPO-Lagrangian run");
            lagrange.Restore(saved.LogLambda, saved.Window);
        }
        trainer.ResumeAt(checkpoint.State.Step);
        if (!session.Run.Writes) return [];   // the metrics belong to rank 0, which may be truncating them now
        var history = MetricsLog.ReadValues(session.Run.MetricsPath);
        if (history.Count != checkpoint.State.Step)
            throw new CliException($"--resume: {session.Run.MetricsPath} holds {history.Count} steps, the checkpoint {checkpoint.State.Step}");
        return history;
    }

    private static void SaveActor(LlamaModel actor, string path, string stage, string chatTemplate, LoraBase? loraBase) =>
        LlamaCheckpoint.Save(actor, path, new Dictionary<string, string> { ["stage"] = stage, [ModelLocator.ChatTemplateKey] = chatTemplate }, loraBase);

    private static int FinishRl(string name, RlMode mode, TrainingSession session, Action<string> saveActor, Device device, int prompts,
        List<IReadOnlyDictionary<string, double>> history, bool quiet)
    {
        if (!session.Run.Writes) return 0;   // rank 0 writes the final actor and the result
        long peakDeviceBytes = device.Backend.Memory.PeakReservedBytes;   // of the steps and checkpoints, before the final save
        string actorPath = Path.Combine(session.Run.Path, "actor.safetensors");
        saveActor(actorPath);
        var last = history[^1];
        double? Last(string key) => last.TryGetValue(key, out var v) ? v : null;
        var result = new Dictionary<string, object?>
        {
            ["stage"] = name,
            ["steps"] = history.Count,
            ["checkpoint"] = session.LastCheckpoint,
            ["prompts"] = prompts,
            ["final_reward"] = Last("reward"),
            ["final_cost"] = Last("cost"),
            ["final_kl"] = Last("kl"),
            ["final_lambda"] = Last("lambda"),
            ["mean_reward"] = history.Average(h => h["reward"]),
            ["mean_cost"] = history.Average(h => h["cost"]),
            ["lambda_trace"] = mode == RlMode.PpoLagrangian ? history.Select(h => h["lambda"]).ToArray() : null,
            ["actor"] = actorPath,
            ["peak_device_bytes"] = peakDeviceBytes,
        };
        session.Run.WriteJson("result.json", result);
        if (quiet) Console.WriteLine(Path.Combine(session.Run.Path, "result.json"));
        else
            Console.WriteLine($"{name}: done, {history.Count} steps, reward {last["reward"]:F3}, cost {last["cost"]:F3}" +
                              (last.TryGetValue("lambda", out var l) ? $", λ {l:F3}" : "") +
                              $"; peak device memory {DeviceOutOfMemoryException.Format(peakDeviceBytes)}; actor {actorPath}");
        return 0;
    }

    /// <summary>A critic file's metadata; <c>base_model</c> names the model whose frozen base an adapters-only critic uses.</summary>
    private static Dictionary<string, string> CriticMetadata(string stage, string baseModel) =>
        new() { ["stage"] = stage, ["format"] = "saferlhf-score-model", ["base_model"] = baseModel };
}
