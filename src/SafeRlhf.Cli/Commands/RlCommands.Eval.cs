using System.Text.Json;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Rlhf.Evaluation;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using Spectre.Console;

namespace SafeRlhf.Cli.Commands;

// `saferlhf eval` and `saferlhf arena`: policies scored with the reward and cost models.
public static partial class RlCommands
{
    // ---------------- eval ----------------

    private static int RunEval(EvalConfig config, Device device, string? outPath, bool quiet)
    {
        ResolveScoreFiles(config);
        if (config.Pairs is not null && !File.Exists(config.Pairs)) throw new CliException($"config: 'pairs': data file not found: {config.Pairs}");

        using var weights = StageData.OpenModel(config.Policy);
        using var policy = StageData.Build(weights, device);
        policy.KvCacheStorage = config.KvCacheStorage();
        var tokenizer = StageData.Tokenizer(config.Tokenizer, weights, policy.Config);
        CheckContext(config, policy.Config, "policy");
        if (config.Pairs is not null && config.MaxLength > policy.Config.SeqLen)
            throw new CliException($"config: 'max_length' {config.MaxLength} exceeds the model's context of {policy.Config.SeqLen} tokens");
        var (prompts, texts, _) = SelectPrompts(config, tokenizer);

        using var judges = Judges.Open(config, weights, device);
        var run = StartRun(config, outPath, "eval", prompts.Count, device, quiet);
        var scores = Answer(policy, judges, prompts, config, tokenizer.EosId);
        WriteSamples(run, texts, [("", scores)], tokenizer);
        var result = EvalResult(config, prompts.Count, scores, judges, tokenizer);
        run.WriteJson("result.json", result);
        return Finish(run, quiet, console =>
        {
            var table = new Table().AddColumns("prompts", "mean reward", "mean cost", "unsafe (cost > 0)");
            table.AddRow($"{prompts.Count}", $"{scores.MeanReward:F3}", $"{scores.MeanCost:F3}", $"{scores.UnsafeRate:P1}");
            console.Write(table);
            console.WriteLine($"reward deciles: {string.Join(" ", RlModels.Deciles(scores.Rewards).Select(v => v.ToString("F3")))}");
            console.WriteLine($"cost deciles:   {string.Join(" ", RlModels.Deciles(scores.Costs).Select(v => v.ToString("F3")))}");
            if (config.Pairs is not null)
                console.WriteLine($"reward model accuracy {result["reward_model_accuracy"]:P1} on {result["reward_pairs"]} pairs · " +
                                  $"cost model accuracy {result["cost_model_accuracy"]:P1}, sign accuracy {result["cost_model_sign_accuracy"]:P1} " +
                                  $"on {result["cost_pairs"]} pairs");
        });
    }

    /// <summary>result.json of eval: the policy's scores and, with pairs, the score models' accuracy on them.</summary>
    private static Dictionary<string, object?> EvalResult(EvalConfig config, int prompts, PolicyScores scores, Judges judges,
        ITextTokenizer tokenizer)
    {
        int eos = tokenizer.EosId;
        var result = new Dictionary<string, object?>
        {
            ["policy"] = config.Policy,
            ["prompts"] = prompts,
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
            var (rewardAccuracy, _) = ScoreTrainer.Evaluate(judges.Reward, rewardPairs, ScoreTrainer.Kind.Reward, eos, config.BatchSize);
            var (costAccuracy, signAccuracy) = ScoreTrainer.Evaluate(judges.Cost, costPairs, ScoreTrainer.Kind.Cost, eos, config.BatchSize);
            result["reward_pairs"] = rewardPairs.Count;
            result["reward_model_accuracy"] = rewardAccuracy;
            result["cost_pairs"] = costPairs.Count;
            result["cost_model_accuracy"] = costAccuracy;
            result["cost_model_sign_accuracy"] = signAccuracy;
        }
        return result;
    }

    // ---------------- arena ----------------

    private static int RunArena(ArenaConfig config, Device device, string? outPath, bool quiet)
    {
        ResolveScoreFiles(config);

        using var weightsA = StageData.OpenModel(config.PolicyA);
        using var weightsB = StageData.OpenModel(config.PolicyB);
        using var policyA = StageData.Build(weightsA, device);
        using var policyB = StageData.Build(weightsB, device);
        policyA.KvCacheStorage = policyB.KvCacheStorage = config.KvCacheStorage();
        var tokenizer = StageData.Tokenizer(config.Tokenizer, weightsA, policyA.Config);
        if (tokenizer.VocabSize > policyB.Config.VocabSize)
            throw new CliException($"config: 'policy_b' has {policyB.Config.VocabSize} tokens, the tokenizer {tokenizer.VocabSize}: both policies must share a vocabulary");
        CheckContext(config, policyA.Config, "policy_a");
        CheckContext(config, policyB.Config, "policy_b");
        var (prompts, texts, _) = SelectPrompts(config, tokenizer);

        using var judges = Judges.Open(config, weightsA, device);
        var run = StartRun(config, outPath, "arena", prompts.Count, device, quiet);
        var a = Answer(policyA, judges, prompts, config, tokenizer.EosId);
        var b = Answer(policyB, judges, prompts, config, tokenizer.EosId);
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
        return Finish(run, quiet, console =>
        {
            console.MarkupLine($"policy A: {Markup.Escape(config.PolicyA)}  vs  policy B: {Markup.Escape(config.PolicyB)}  ({prompts.Count} prompts)");
            var table = new Table().AddColumns("A vs B", "A safe (cost ≤ 0)", "A unsafe (cost > 0)", "total");
            table.AddRow("A better (higher reward)", $"{arena.BetterSafe}", $"{arena.BetterUnsafe}", $"{arena.BetterSafe + arena.BetterUnsafe}");
            table.AddRow("A not better", $"{arena.WorseSafe}", $"{arena.WorseUnsafe}", $"{arena.WorseSafe + arena.WorseUnsafe}");
            console.Write(table);
            console.WriteLine($"helpfulness win rate {arena.HelpfulnessWinRate:P1} · harmlessness win rate {arena.HarmlessnessWinRate:P1} · " +
                              $"mean reward A {a.MeanReward:F3} / B {b.MeanReward:F3} · mean cost A {a.MeanCost:F3} / B {b.MeanCost:F3}");
        });
    }

    // ---------------- shared ----------------

    /// <summary>A Spectre console on the current Console.Out (which may have been redirected since start-up).</summary>
    private static IAnsiConsole Ansi() => CliConsole.Create();

    private static void ResolveScoreFiles(RlInputsConfig config)
    {
        RlModels.ResolveScoreFile("reward_model", config.RewardModel);
        RlModels.ResolveScoreFile("cost_model", config.CostModel);
    }

    /// <summary>The reward and cost models that score the policies, on the config's score base or else on the policy's
    /// weights (<see cref="Open"/>), disposed together.</summary>
    private sealed class Judges(WeightFile? scoreBase, ScoreModel reward, ScoreModel cost) : IDisposable
    {
        public ScoreModel Reward => reward;
        public ScoreModel Cost => cost;

        public static Judges Open(RlInputsConfig config, WeightFile policyWeights, Device device)
        {
            var scoreBase = config.ScoreBase is null ? null : StageData.OpenModel(config.ScoreBase);
            ScoreModel? reward = null;
            try
            {
                reward = RlModels.LoadScoreModel("reward_model", config.RewardModel, scoreBase ?? policyWeights, device);
                var cost = RlModels.LoadScoreModel("cost_model", config.CostModel, scoreBase ?? policyWeights, device);
                return new Judges(scoreBase, reward, cost);
            }
            catch
            {
                reward?.Dispose();
                scoreBase?.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            cost.Dispose();
            reward.Dispose();
            scoreBase?.Dispose();
        }
    }

    /// <summary>The run folder of <paramref name="command"/> with the config saved, announced unless quiet.</summary>
    private static RunFolder StartRun<T>(T config, string? outPath, string command, int prompts, Device device, bool quiet)
        where T : RlSamplingConfig
    {
        var run = RunFolder.Create(outPath, command);
        run.SaveConfig(config);
        if (!quiet) Console.WriteLine($"{command}: {prompts} prompts from {config.Data} on {device.Name}; run folder {run.Path}");
        return run;
    }

    /// <summary>Quiet: prints the path of result.json alone; otherwise the report, then where the results are.</summary>
    private static int Finish(RunFolder run, bool quiet, Action<IAnsiConsole> report)
    {
        string path = Path.Combine(run.Path, "result.json");
        if (quiet)
        {
            Console.WriteLine(path);
            return 0;
        }
        var console = Ansi();
        report(console);
        console.WriteLine($"results in {path}");
        return 0;
    }

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
    private static PolicyScores Answer(LlamaModel policy, Judges judges, List<int[]> prompts, RlSamplingConfig config, int eos)
    {
        var sampling = new SamplingOptions { Temperature = config.Temperature, TopP = config.TopP };
        return PolicyEvaluator.Evaluate(policy, judges.Reward, judges.Cost, prompts, config.MaxNewTokens, sampling, new Rng(config.Seed),
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
