using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Rlhf.Evaluation;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using Spectre.Console;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf ppo|ppo-lag|reward-shaping|eval|arena`: RL fine-tuning against reward and cost models written by
/// `saferlhf reward`/`cost`, and evaluation of policies with them. RL runs write metrics.jsonl (reward, cost, λ, KL per
/// step), result.json and the final actor (actor.safetensors, loadable by `saferlhf generate`).</summary>
public static class RlCommands
{
    private const string RlConfigKeys = "Config: actor, reward_model, cost_model (from `saferlhf reward`/`cost`), data (PKU-SafeRLHF prompts), " +
        "tokenizer, chat_template, score_base, max_prompt_length, seed, checkpoint_every, stop_after_steps, rl.*, " +
        "lora.{rank, alpha, targets, quantize} (adapters for the actor and critics), ptx_data and ptx_max_length (with rl.ptx_coeff). Checkpoints hold the actor, the critics, " +
        "the optimisers, λ and the random state; --resume continues with the same losses as an uninterrupted run, and Ctrl-C saves one. " +
        ChatTemplates.Help + ".";

    private const string RewardCriticFile = "reward_critic.safetensors";
    private const string CostCriticFile = "cost_critic.safetensors";

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

    /// <summary>`--device` and `--threads` of one command.</summary>
    private sealed record DeviceOptions(Option<string> Device, Option<int> Threads)
    {
        public Device Create(ParseResult parse) => DeviceFactory.Create(parse.GetValue(Device)!, parse.GetValue(Threads));
    }

    private static (Command, Option<string?>, Option<string[]>, Option<string?>, DeviceOptions, Option<bool>) Skeleton(string name, string description)
    {
        var configOption = CommonOptions.Config();
        var setOption = CommonOptions.Set();
        var outOption = new Option<string?>("--out") { Description = $"Run folder (default: runs/{name}-<time>)" };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var quietOption = CommonOptions.Quiet();
        var command = new Command(name, description) { configOption, setOption, outOption, deviceOption, threadsOption, quietOption };
        return (command, configOption, setOption, outOption, new DeviceOptions(deviceOption, threadsOption), quietOption);
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
            var c = ConfigLoader.Load(new RlConfig(), configFile, parse.GetValue(set) ?? []);
            c.Validate();
            return RunRl(name, mode, c, device.Create(parse), outPath, resume is not null, parse.GetValue(quiet));
        }));
        return command;
    }

    // ---------------- ppo / ppo-lag / reward-shaping ----------------

    private static int RunRl(string name, RlMode mode, RlConfig config, Device device, string? outPath, bool resuming, bool quiet)
    {
        // Fail on a missing score model before the (slow) model loading.
        RlModels.ResolveScoreFile("reward_model", config.RewardModel);
        RlModels.ResolveScoreFile("cost_model", config.CostModel);

        using var actorWeights = StageData.OpenModel(config.Actor);
        bool actorHasAdapters = LlamaCheckpoint.HasAdapters(actorWeights);
        // Under LoRA the actor, the reward and cost models and the critics hold one copy of each frozen base matrix.
        using var shared = new FrozenWeightCache();
        using var actor = StageData.Build(actorWeights, device, config.Lora, shared);
        var tokenizer = StageData.Tokenizer(config.Tokenizer, actorWeights, actor.Config);
        var o = config.Rl;
        if (config.MaxPromptLength + o.MaxNewTokens > actor.Config.SeqLen)
            throw new CliException($"config: 'max_prompt_length' + 'rl.max_new_tokens' = {config.MaxPromptLength + o.MaxNewTokens} " +
                                   $"exceeds the actor's context of {actor.Config.SeqLen} tokens");
        var (prompts, _, skipped) = RlModels.Prompts(config.Data, tokenizer, config.MaxPromptLength, config.Template());
        if (config.PtxData is not null && config.PtxMaxLength > actor.Config.SeqLen)
            throw new CliException($"config: 'ptx_max_length' {config.PtxMaxLength} exceeds the actor's context of {actor.Config.SeqLen} tokens");
        var ptx = config.PtxData is null ? null : StageData.Sft(config.PtxData, tokenizer, config.PtxMaxLength, config.Template()).Examples;

        using var scoreBase = config.ScoreBase is null ? null : StageData.OpenModel(config.ScoreBase);
        var baseWeights = scoreBase ?? actorWeights;
        using var rewardModel = RlModels.LoadScoreModel("reward_model", config.RewardModel, baseWeights, device, shared: shared);
        using var costModel = RlModels.LoadScoreModel("cost_model", config.CostModel, baseWeights, device, shared: shared);
        using var rewardCritic = RlModels.LoadScoreModel("reward_model", config.RewardModel, baseWeights, device, trainable: true, shared: shared);
        using var costCritic = mode == RlMode.PpoLagrangian
            ? RlModels.LoadScoreModel("cost_model", config.CostModel, baseWeights, device, trainable: true, shared: shared)
            : null;
        // The reference policy: the actor with its fresh adapters switched off, else a frozen copy of the actor.
        var rng = new Rng(config.Seed);
        bool freshAdapters = config.Lora is not null && !actorHasAdapters;
        using var reference = freshAdapters ? null : StageData.Build(actorWeights, device);
        if (reference is not null)
            foreach (var (_, p) in reference.NamedParameters()) p.RequiresGrad = false;
        if (config.Lora is { } lora)
        {
            var loraRng = rng.Fork();
            if (freshAdapters) lora.Apply(actor, loraRng);
            foreach (var critic in new[] { rewardCritic, costCritic })
                if (critic is not null && !critic.Backbone.NamedParameters().Any(p => p.Name.Contains(".lora.", StringComparison.Ordinal)))
                    lora.Apply(critic.Backbone, loraRng);
        }

        int pad = tokenizer.EosId, eos = tokenizer.EosId;
        using var trainer = new PpoTrainer(mode, actor, reference, rewardModel, costModel, rewardCritic, costCritic, o,
            r => prompts[r.NextInt(prompts.Count)], rng, pad, eos, ptx);

        var run = RunFolder.Create(outPath, name);
        var checkpointModels = new List<CheckpointModel>
        {
            new(StageCheckpoint.ModelFile, path => LlamaCheckpoint.Save(actor, path, new Dictionary<string, string> { ["stage"] = name, [ModelLocator.ChatTemplateKey] = config.ChatTemplate })),
            new(RewardCriticFile, path => StageCheckpoint.SaveModule(rewardCritic, path, CriticMetadata(name))),
        };
        if (costCritic is not null) checkpointModels.Add(new(CostCriticFile, path => StageCheckpoint.SaveModule(costCritic, path, CriticMetadata(name))));
        var optimizers = trainer.NamedOptimizers.Select(x => new CheckpointOptimizer(x.Name, x.Optimizer)).ToList();
        var losses = new List<double>();
        var history = new List<IReadOnlyDictionary<string, double>>();
        string? lastCheckpoint = null;
        int savedStep = -1;
        if (resuming)
        {
            var checkpoint = StageCheckpoint.ReadLatest(run.Path, name);
            if (checkpoint.State.TotalSteps != o.Steps)
                throw new CliException($"--resume: the checkpoint belongs to a run of {checkpoint.State.TotalSteps} steps, " +
                                       $"the config asks for rl.steps = {o.Steps}");
            StageCheckpoint.LoadInto(actor, checkpoint.ModelPath);
            StageCheckpoint.LoadInto(rewardCritic, checkpoint.File(RewardCriticFile));
            if (costCritic is not null) StageCheckpoint.LoadInto(costCritic, checkpoint.File(CostCriticFile));
            foreach (var optimizer in optimizers) checkpoint.RestoreOptimizer(optimizer);
            if (trainer.Lagrange is { } lagrange)
            {
                var saved = checkpoint.State.Lagrange
                            ?? throw new CliException($"corrupt checkpoint: {checkpoint.Folder}: trainer state has no λ for a PPO-Lagrangian run");
                lagrange.Restore(saved.LogLambda, saved.Window);
            }
            rng.State = checkpoint.State.RngState;
            trainer.ResumeAt(checkpoint.State.Step);
            losses.AddRange(checkpoint.State.Losses);
            StageCheckpoint.TruncateMetrics(run.MetricsPath, checkpoint.State.Step);
            history.AddRange(ReadMetricValues(run.MetricsPath));
            if (history.Count != checkpoint.State.Step)
                throw new CliException($"--resume: {run.MetricsPath} holds {history.Count} steps, the checkpoint {checkpoint.State.Step}");
            (lastCheckpoint, savedStep) = (checkpoint.Folder, checkpoint.State.Step);
        }
        else
        {
            if (StageCheckpoint.Exists(run.Path))
                throw new CliException($"--out: {run.Path} already holds a checkpoint; continue it with --resume {run.Path} or choose another folder");
            if (File.Exists(run.MetricsPath)) File.Delete(run.MetricsPath);
        }
        run.SaveConfig(config);
        if (!quiet)
            Console.WriteLine($"{name}: {prompts.Count} prompts from {config.Data}{(skipped > 0 ? $" ({skipped} longer than max_prompt_length skipped)" : "")}, " +
                              $"{(resuming ? $"resuming at step {trainer.StepsDone} of " : "")}{o.Steps} steps of {o.BatchSize} rollouts " +
                              $"on {device.Name}; run folder {run.Path}");

        void Save()
        {
            var lagrangeState = trainer.Lagrange is { } l ? new LagrangeState(l.LogLambda, l.Window.ToArray()) : null;
            lastCheckpoint = StageCheckpoint.Save(run.Path, name, trainer.StepsDone, o.Steps, checkpointModels, optimizers, rng, losses, lagrangeState);
            savedStep = trainer.StepsDone;
        }

        bool stopped;
        try
        {
            stopped = RunWithProgress.Execute(quiet, run, (onStep, _, cancel) =>
            {
                while (trainer.StepsDone < o.Steps)
                {
                    if (cancel.IsCancellationRequested)
                    {
                        if (trainer.StepsDone > 0 && savedStep != trainer.StepsDone) Save();
                        cancel.ThrowIfCancellationRequested();
                    }
                    var m = trainer.Step();
                    losses.Add(m.Values["actor_loss"]);
                    history.Add(m.Values);
                    onStep(m);
                    int s = trainer.StepsDone;
                    bool stopHere = config.StopAfterSteps > 0 && s >= config.StopAfterSteps && s < o.Steps;
                    if (stopHere || s == o.Steps || (config.CheckpointEvery > 0 && s % config.CheckpointEvery == 0)) Save();
                    if (stopHere) return true;
                }
                return false;
            });
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine(lastCheckpoint is null
                ? "interrupted before the first step; nothing saved"
                : $"interrupted at step {trainer.StepsDone} of {o.Steps}; checkpoint {lastCheckpoint} (continue with --resume {run.Path})");
            return 130;
        }
        if (stopped)
        {
            Console.WriteLine(quiet ? lastCheckpoint
                : $"stopped after step {trainer.StepsDone} of {o.Steps}; checkpoint {lastCheckpoint} (continue with --resume {run.Path})");
            return 0;
        }

        long peakDeviceBytes = device.Backend.Memory.PeakReservedBytes;   // of the steps and checkpoints, before the final save
        string actorPath = Path.Combine(run.Path, "actor.safetensors");
        LlamaCheckpoint.Save(actor, actorPath, new Dictionary<string, string> { ["stage"] = name, [ModelLocator.ChatTemplateKey] = config.ChatTemplate });
        var last = history[^1];
        double? Last(string key) => last.TryGetValue(key, out var v) ? v : null;
        var result = new Dictionary<string, object?>
        {
            ["stage"] = name,
            ["steps"] = history.Count,
            ["checkpoint"] = lastCheckpoint,
            ["prompts"] = prompts.Count,
            ["final_reward"] = Last("reward"),
            ["final_cost"] = Last("cost"),
            ["final_kl"] = Last("kl"),
            ["final_lambda"] = Last("lambda"),
            ["mean_reward"] = history.Average(m => m["reward"]),
            ["mean_cost"] = history.Average(m => m["cost"]),
            ["lambda_trace"] = mode == RlMode.PpoLagrangian ? history.Select(m => m["lambda"]).ToArray() : null,
            ["actor"] = actorPath,
            ["peak_device_bytes"] = peakDeviceBytes,
        };
        run.WriteJson("result.json", result);
        if (quiet) Console.WriteLine(Path.Combine(run.Path, "result.json"));
        else
            Console.WriteLine($"{name}: done, {history.Count} steps, reward {last["reward"]:F3}, cost {last["cost"]:F3}" +
                              (last.TryGetValue("lambda", out var l) ? $", λ {l:F3}" : "") +
                              $"; peak device memory {DeviceOutOfMemoryException.Format(peakDeviceBytes)}; actor {actorPath}");
        return 0;
    }

    private static Dictionary<string, string> CriticMetadata(string stage) =>
        new() { ["stage"] = stage, ["format"] = "saferlhf-score-model" };

    /// <summary>The values of every step in a run's metrics.jsonl (without its stage and step fields), in order.</summary>
    private static List<IReadOnlyDictionary<string, double>> ReadMetricValues(string metricsPath)
    {
        var steps = new List<IReadOnlyDictionary<string, double>>();
        if (!File.Exists(metricsPath)) return steps;
        int lineNumber = 0;
        foreach (var line in File.ReadLines(metricsPath))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var values = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (p.Value.ValueKind == JsonValueKind.Number && p.Name != "step") values[p.Name] = p.Value.GetDouble();
                    else if (p.Value.ValueKind == JsonValueKind.String && p.Name != "stage")
                        values[p.Name] = double.Parse(p.Value.GetString()!, CultureInfo.InvariantCulture); // NaN, Infinity
                steps.Add(values);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                throw new CliException($"corrupt run folder: {metricsPath}:{lineNumber}: not a metrics row ({e.Message})");
            }
        }
        return steps;
    }

    // ---------------- eval ----------------

    private static int RunEval(EvalConfig config, Device device, string? outPath, bool quiet)
    {
        RlModels.ResolveScoreFile("reward_model", config.RewardModel);
        RlModels.ResolveScoreFile("cost_model", config.CostModel);
        if (config.Pairs is not null && !File.Exists(config.Pairs)) throw new CliException($"config: 'pairs': data file not found: {config.Pairs}");

        using var weights = StageData.OpenModel(config.Policy);
        using var policy = StageData.Build(weights, device);
        var tokenizer = StageData.Tokenizer(config.Tokenizer, weights, policy.Config);
        CheckContext(config, policy.Config, "policy");
        if (config.Pairs is not null && config.MaxLength > policy.Config.SeqLen)
            throw new CliException($"config: 'max_length' {config.MaxLength} exceeds the model's context of {policy.Config.SeqLen} tokens");
        var (prompts, texts, _) = SelectPrompts(config, tokenizer);

        using var scoreBase = config.ScoreBase is null ? null : StageData.OpenModel(config.ScoreBase);
        using var rewardModel = RlModels.LoadScoreModel("reward_model", config.RewardModel, scoreBase ?? weights, device);
        using var costModel = RlModels.LoadScoreModel("cost_model", config.CostModel, scoreBase ?? weights, device);

        var run = RunFolder.Create(outPath, "eval");
        run.SaveConfig(config);
        if (!quiet) Console.WriteLine($"eval: {prompts.Count} prompts from {config.Data} on {device.Name}; run folder {run.Path}");
        int eos = tokenizer.EosId;
        var scores = Answer(policy, rewardModel, costModel, prompts, config, eos);
        WriteSamples(run, texts, [("", scores)], tokenizer);

        var result = new Dictionary<string, object?>
        {
            ["policy"] = config.Policy,
            ["prompts"] = prompts.Count,
            ["mean_reward"] = scores.MeanReward,
            ["mean_cost"] = scores.MeanCost,
            ["unsafe_rate"] = scores.UnsafeRate,
            ["reward_deciles"] = RlModels.Deciles(scores.Rewards),
            ["cost_deciles"] = RlModels.Deciles(scores.Costs),
        };
        if (config.Pairs is not null)
        {
            var (rewardPairs, _) = StageData.Pairs(config.Pairs, tokenizer, config.MaxLength, "reward", config.Template());
            var (costPairs, _) = StageData.Pairs(config.Pairs, tokenizer, config.MaxLength, "cost", config.Template());
            var (rewardAccuracy, _) = ScoreTrainer.Evaluate(rewardModel, rewardPairs, ScoreTrainer.Kind.Reward, eos, config.BatchSize);
            var (costAccuracy, signAccuracy) = ScoreTrainer.Evaluate(costModel, costPairs, ScoreTrainer.Kind.Cost, eos, config.BatchSize);
            result["reward_pairs"] = rewardPairs.Count;
            result["reward_model_accuracy"] = rewardAccuracy;
            result["cost_pairs"] = costPairs.Count;
            result["cost_model_accuracy"] = costAccuracy;
            result["cost_model_sign_accuracy"] = signAccuracy;
        }
        run.WriteJson("result.json", result);

        if (quiet)
        {
            Console.WriteLine(Path.Combine(run.Path, "result.json"));
            return 0;
        }
        var console = Ansi();
        var table = new Table().AddColumns("prompts", "mean reward", "mean cost", "unsafe (cost > 0)");
        table.AddRow($"{prompts.Count}", $"{scores.MeanReward:F3}", $"{scores.MeanCost:F3}", $"{scores.UnsafeRate:P1}");
        console.Write(table);
        console.WriteLine($"reward deciles: {string.Join(" ", RlModels.Deciles(scores.Rewards).Select(v => v.ToString("F3")))}");
        console.WriteLine($"cost deciles:   {string.Join(" ", RlModels.Deciles(scores.Costs).Select(v => v.ToString("F3")))}");
        if (config.Pairs is not null)
            console.WriteLine($"reward model accuracy {result["reward_model_accuracy"]:P1} on {result["reward_pairs"]} pairs · " +
                              $"cost model accuracy {result["cost_model_accuracy"]:P1}, sign accuracy {result["cost_model_sign_accuracy"]:P1} " +
                              $"on {result["cost_pairs"]} pairs");
        console.WriteLine($"results in {Path.Combine(run.Path, "result.json")}");
        return 0;
    }

    // ---------------- arena ----------------

    private static int RunArena(ArenaConfig config, Device device, string? outPath, bool quiet)
    {
        RlModels.ResolveScoreFile("reward_model", config.RewardModel);
        RlModels.ResolveScoreFile("cost_model", config.CostModel);

        using var weightsA = StageData.OpenModel(config.PolicyA);
        using var weightsB = StageData.OpenModel(config.PolicyB);
        using var policyA = StageData.Build(weightsA, device);
        using var policyB = StageData.Build(weightsB, device);
        var tokenizer = StageData.Tokenizer(config.Tokenizer, weightsA, policyA.Config);
        if (tokenizer.VocabSize > policyB.Config.VocabSize)
            throw new CliException($"config: 'policy_b' has {policyB.Config.VocabSize} tokens, the tokenizer {tokenizer.VocabSize}: both policies must share a vocabulary");
        CheckContext(config, policyA.Config, "policy_a");
        CheckContext(config, policyB.Config, "policy_b");
        var (prompts, texts, _) = SelectPrompts(config, tokenizer);

        using var scoreBase = config.ScoreBase is null ? null : StageData.OpenModel(config.ScoreBase);
        using var rewardModel = RlModels.LoadScoreModel("reward_model", config.RewardModel, scoreBase ?? weightsA, device);
        using var costModel = RlModels.LoadScoreModel("cost_model", config.CostModel, scoreBase ?? weightsA, device);

        var run = RunFolder.Create(outPath, "arena");
        run.SaveConfig(config);
        if (!quiet) Console.WriteLine($"arena: {prompts.Count} prompts from {config.Data} on {device.Name}; run folder {run.Path}");
        int eos = tokenizer.EosId;
        var a = Answer(policyA, rewardModel, costModel, prompts, config, eos);
        var b = Answer(policyB, rewardModel, costModel, prompts, config, eos);
        var arena = ArenaResult.Compare(a, b);
        WriteSamples(run, texts, [("_a", a), ("_b", b)], tokenizer);

        object Summary(string path, PolicyScores s) => new Dictionary<string, object>
        {
            ["path"] = path, ["mean_reward"] = s.MeanReward, ["mean_cost"] = s.MeanCost, ["unsafe_rate"] = s.UnsafeRate,
        };
        var result = new Dictionary<string, object?>
        {
            ["prompts"] = prompts.Count,
            ["policy_a"] = Summary(config.PolicyA, a),
            ["policy_b"] = Summary(config.PolicyB, b),
            ["better_safe"] = arena.BetterSafe,
            ["better_unsafe"] = arena.BetterUnsafe,
            ["worse_safe"] = arena.WorseSafe,
            ["worse_unsafe"] = arena.WorseUnsafe,
            ["helpfulness_win_rate"] = arena.HelpfulnessWinRate,
            ["harmlessness_win_rate"] = arena.HarmlessnessWinRate,
        };
        run.WriteJson("result.json", result);

        if (quiet)
        {
            Console.WriteLine(Path.Combine(run.Path, "result.json"));
            return 0;
        }
        var console = Ansi();
        console.MarkupLine($"policy A: {Markup.Escape(config.PolicyA)}  vs  policy B: {Markup.Escape(config.PolicyB)}  ({prompts.Count} prompts)");
        var table = new Table().AddColumns("A vs B", "A safe (cost ≤ 0)", "A unsafe (cost > 0)", "total");
        table.AddRow("A better (higher reward)", $"{arena.BetterSafe}", $"{arena.BetterUnsafe}", $"{arena.BetterSafe + arena.BetterUnsafe}");
        table.AddRow("A not better", $"{arena.WorseSafe}", $"{arena.WorseUnsafe}", $"{arena.WorseSafe + arena.WorseUnsafe}");
        console.Write(table);
        console.WriteLine($"helpfulness win rate {arena.HelpfulnessWinRate:P1} · harmlessness win rate {arena.HarmlessnessWinRate:P1} · " +
                          $"mean reward A {a.MeanReward:F3} / B {b.MeanReward:F3} · mean cost A {a.MeanCost:F3} / B {b.MeanCost:F3}");
        console.WriteLine($"results in {Path.Combine(run.Path, "result.json")}");
        return 0;
    }

    // ---------------- shared ----------------

    /// <summary>A Spectre console on the current Console.Out (which may have been redirected since start-up).</summary>
    private static IAnsiConsole Ansi() => AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });

    private static void CheckContext(RlSamplingConfig config, LlamaConfig model, string key)
    {
        if (config.MaxPromptLength + config.MaxNewTokens > model.SeqLen)
            throw new CliException($"config: 'max_prompt_length' + 'max_new_tokens' = {config.MaxPromptLength + config.MaxNewTokens} " +
                                   $"exceeds the context of '{key}' ({model.SeqLen} tokens)");
    }

    private static (List<int[]> Ids, List<string> Texts, int Skipped) SelectPrompts(RlSamplingConfig config, ITextTokenizer tokenizer)
    {
        var (ids, texts, skipped) = RlModels.Prompts(config.Data, tokenizer, config.MaxPromptLength, config.Template());
        if (config.MaxPrompts > 0 && ids.Count > config.MaxPrompts)
        {
            ids = ids.Take(config.MaxPrompts).ToList();
            texts = texts.Take(config.MaxPrompts).ToList();
        }
        return (ids, texts, skipped);
    }

    /// <summary>The policy's answers to the prompts, scored; sampling starts from the config's seed, so two policies
    /// answered with the same config draw the same random numbers.</summary>
    private static PolicyScores Answer(LlamaModel policy, ScoreModel rewardModel, ScoreModel costModel, List<int[]> prompts,
        RlSamplingConfig config, int eos)
    {
        var sampling = new SamplingOptions { Temperature = config.Temperature, TopP = config.TopP };
        return PolicyEvaluator.Evaluate(policy, rewardModel, costModel, prompts, config.MaxNewTokens, sampling, new Rng(config.Seed),
            eos, eos, config.BatchSize);
    }

    /// <summary>samples.jsonl: per prompt, each policy's response text, reward and cost (keys suffixed per policy).</summary>
    private static void WriteSamples(RunFolder run, List<string> prompts, (string Suffix, PolicyScores Scores)[] policies, ITextTokenizer tokenizer)
    {
        using var writer = new StreamWriter(Path.Combine(run.Path, "samples.jsonl"));
        for (int i = 0; i < prompts.Count; i++)
        {
            var line = new Dictionary<string, object> { ["prompt"] = prompts[i] };
            foreach (var (suffix, s) in policies)
            {
                line["response" + suffix] = tokenizer.Decode(s.Responses[i].Where(t => t != tokenizer.EosId).ToArray());
                line["reward" + suffix] = s.Rewards[i];
                line["cost" + suffix] = s.Costs[i];
            }
            writer.WriteLine(JsonSerializer.Serialize(line));
        }
    }
}
