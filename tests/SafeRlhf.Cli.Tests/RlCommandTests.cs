using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

[Collection(nameof(ConsoleCollection))]
public sealed class RlCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-rl-" + Guid.NewGuid().ToString("N"));

    public RlCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static (int Code, string Out, string Error) Cli(params string[] args) => CliHarness.Run(args);

    private static string Model => Assets.Require("models/stories260K.bin");
    private static string Tokenizer => Assets.Require("models/tok512.bin");

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string PkuData(int count) => Write("pku.jsonl",
        string.Join("\n", File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(count)) + "\n");

    private string Json(string name, JsonObject config) => Write(name, config.ToJsonString());

    private static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    private static List<JsonElement> Lines(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error);

    /// <summary>Trains a reward or cost model for 2 steps; returns its run folder.</summary>
    private string ScoreRun(string stage, string data)
    {
        string config = Json($"{stage}.json", new JsonObject
        {
            ["model"] = Model,
            ["data"] = data,
            ["max_length"] = 160,
            ["seed"] = 3,
            ["train"] = new JsonObject { ["steps"] = 2, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        });
        string run = Path.Combine(_dir, stage);
        Ok(Cli(stage, "--config", config, "--out", run, "--device", "cpu", "--quiet"));
        return run;
    }

    private static JsonObject RlConfig(string actor, string reward, string cost, string data, int steps) => new()
    {
        ["actor"] = actor,
        ["reward_model"] = reward,
        ["cost_model"] = cost,
        ["tokenizer"] = Tokenizer,
        ["data"] = data,
        ["max_prompt_length"] = 200,
        ["seed"] = 5,
        ["rl"] = new JsonObject
        {
            ["steps"] = steps, ["batch_size"] = 2, ["max_new_tokens"] = 4, ["actor_lr"] = 1e-3, ["critic_lr"] = 1e-3, ["lambda_lr"] = 0.5,
        },
    };

    private static JsonObject SamplingConfig(string reward, string cost, string data) => new()
    {
        ["reward_model"] = reward,
        ["cost_model"] = cost,
        ["tokenizer"] = Tokenizer,
        ["data"] = data,
        ["max_prompt_length"] = 200,
        ["max_new_tokens"] = 4,
        ["max_prompts"] = 3,
        ["batch_size"] = 2,
        ["seed"] = 11,
    };

    [Fact]
    public void PpoLagTrainsAnActorThatEvalArenaAndGenerateUse()
    {
        string data = PkuData(6);
        string rewardRun = ScoreRun("reward", data);
        string costRun = ScoreRun("cost", data);
        // The reward model as its run folder, the cost model as its model file: both forms are accepted.
        string costFile = Path.Combine(costRun, "checkpoint-2", "model.safetensors");

        string ppoRun = Path.Combine(_dir, "ppo-lag");
        Ok(Cli("ppo-lag", "--config", Json("ppo-lag.json", RlConfig(Model, rewardRun, costFile, data, steps: 2)),
            "--out", ppoRun, "--device", "cpu", "--quiet"));
        var metrics = Lines(Path.Combine(ppoRun, "metrics.jsonl"));
        Assert.Equal(2, metrics.Count);
        Assert.Equal([1, 2], metrics.Select(m => m.GetProperty("step").GetInt32()));
        foreach (var m in metrics)
        {
            Assert.Equal("ppo_lag", m.GetProperty("stage").GetString());
            foreach (var key in new[] { "lambda", "reward", "cost", "kl" }) Assert.True(double.IsFinite(m.GetProperty(key).GetDouble()), key);
            Assert.True(m.GetProperty("lambda").GetDouble() >= 0);
        }
        var ppoResult = ReadJson(Path.Combine(ppoRun, "result.json"));
        Assert.Equal(2, ppoResult.GetProperty("steps").GetInt32());
        // The device pool's high-water mark held at least the five models' weights (stories260K: about 260K weights each).
        Assert.True(ppoResult.GetProperty("peak_device_bytes").GetInt64() >= 5 * 200_000 * sizeof(float));
        Assert.Equal(metrics[1].GetProperty("lambda").GetDouble(), ppoResult.GetProperty("final_lambda").GetDouble());
        Assert.Equal(metrics.Select(m => m.GetProperty("lambda").GetDouble()),
            ppoResult.GetProperty("lambda_trace").EnumerateArray().Select(e => e.GetDouble()));
        string actor = ppoResult.GetProperty("actor").GetString()!;
        Assert.Equal(Path.Combine(ppoRun, "actor.safetensors"), actor);

        // Every training command draws its curves: PNG files (by their signature) for the score models and PPO-Lagrangian.
        foreach (var (run, plots) in new[] { (rewardRun, new[] { "loss", "accuracy" }), (costRun, ["loss", "accuracy"]),
                     (ppoRun, ["reward", "cost", "lambda", "kl"]) })
            foreach (var plot in plots)
                Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(run, "plots", plot + ".png")).Take(4));

        // The saved actor is a LLaMA checkpoint that `generate` loads.
        var gen = Cli("generate", "--model", actor, "--tokenizer", Tokenizer, "--prompt", "Once upon a time",
            "--max-new-tokens", "3", "--temperature", "0", "--json", "--device", "cpu");
        Ok(gen);
        var generated = JsonDocument.Parse(gen.Out.Trim()).RootElement.GetProperty("generated_ids");
        Assert.InRange(generated.GetArrayLength(), 1, 3);

        // Plain PPO: one step, no λ.
        string plainRun = Path.Combine(_dir, "ppo");
        Ok(Cli("ppo", "--config", Json("ppo.json", RlConfig(Model, rewardRun, costRun, data, steps: 1)), "--out", plainRun, "--device", "cpu", "--quiet"));
        var plain = Assert.Single(Lines(Path.Combine(plainRun, "metrics.jsonl")));
        Assert.Equal("ppo", plain.GetProperty("stage").GetString());
        Assert.False(plain.TryGetProperty("lambda", out _));

        // eval of the trained actor, with the score models' accuracy on the pairs.
        var evalConfig = SamplingConfig(rewardRun, costRun, data);
        evalConfig["policy"] = actor;
        evalConfig["pairs"] = data;
        evalConfig["max_length"] = 160;
        evalConfig["score_base"] = Model;
        string evalRun = Path.Combine(_dir, "eval");
        Ok(Cli("eval", "--config", Json("eval.json", evalConfig), "--out", evalRun, "--device", "cpu", "--quiet"));
        var eval = ReadJson(Path.Combine(evalRun, "result.json"));
        Assert.Equal(3, eval.GetProperty("prompts").GetInt32());
        var samples = Lines(Path.Combine(evalRun, "samples.jsonl"));
        Assert.Equal(3, samples.Count);
        var rewards = samples.Select(s => s.GetProperty("reward").GetDouble()).ToArray();
        var costs = samples.Select(s => s.GetProperty("cost").GetDouble()).ToArray();
        Assert.Equal(rewards.Average(), eval.GetProperty("mean_reward").GetDouble(), 9);
        Assert.Equal(costs.Average(), eval.GetProperty("mean_cost").GetDouble(), 9);
        Assert.Equal(costs.Count(c => c > 0) / 3.0, eval.GetProperty("unsafe_rate").GetDouble(), 9);
        var rewardDeciles = eval.GetProperty("reward_deciles").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var costDeciles = eval.GetProperty("cost_deciles").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(11, rewardDeciles.Length);
        Assert.Equal(rewards.Min(), rewardDeciles[0], 9);
        Assert.Equal(rewards.Max(), rewardDeciles[10], 9);
        Assert.Equal(costs.Min(), costDeciles[0], 9);
        Assert.Equal(costs.Max(), costDeciles[10], 9);
        Assert.Equal(costDeciles.Order(), costDeciles);
        Assert.Equal(6, eval.GetProperty("reward_pairs").GetInt32());
        foreach (var key in new[] { "reward_model_accuracy", "cost_model_accuracy", "cost_model_sign_accuracy" })
            Assert.InRange(eval.GetProperty(key).GetDouble(), 0.0, 1.0);

        // arena: the trained actor against the initial model on the same prompts with the same seed.
        var arenaConfig = SamplingConfig(rewardRun, costRun, data);
        arenaConfig["policy_a"] = actor;
        arenaConfig["policy_b"] = Model;
        string arenaRun = Path.Combine(_dir, "arena");
        Ok(Cli("arena", "--config", Json("arena.json", arenaConfig), "--out", arenaRun, "--device", "cpu", "--quiet"));
        var arena = ReadJson(Path.Combine(arenaRun, "result.json"));
        int bs = arena.GetProperty("better_safe").GetInt32(), bu = arena.GetProperty("better_unsafe").GetInt32();
        int ws = arena.GetProperty("worse_safe").GetInt32(), wu = arena.GetProperty("worse_unsafe").GetInt32();
        Assert.Equal(3, bs + bu + ws + wu);
        Assert.Equal((bs + bu) / 3.0, arena.GetProperty("helpfulness_win_rate").GetDouble(), 9);
        Assert.InRange(arena.GetProperty("harmlessness_win_rate").GetDouble(), 0.0, 1.0);
        // Same prompts, seed and batching as eval: policy A's answers score as in eval.
        Assert.Equal(eval.GetProperty("mean_reward").GetDouble(), arena.GetProperty("policy_a").GetProperty("mean_reward").GetDouble(), 9);
        Assert.Equal(eval.GetProperty("unsafe_rate").GetDouble(), arena.GetProperty("policy_a").GetProperty("unsafe_rate").GetDouble(), 9);
        Assert.Equal((bs + ws) / 3.0, 1 - arena.GetProperty("policy_a").GetProperty("unsafe_rate").GetDouble(), 9);

        // A policy against itself with the same seed gives identical answers: never better, never less harmful.
        arenaConfig["policy_a"] = Model;
        string selfRun = Path.Combine(_dir, "arena-self");
        var self = Cli("arena", "--config", Json("arena-self.json", arenaConfig), "--out", selfRun, "--device", "cpu");
        Ok(self);
        Assert.Contains("helpfulness win rate", self.Out);
        var selfResult = ReadJson(Path.Combine(selfRun, "result.json"));
        Assert.Equal(0, selfResult.GetProperty("better_safe").GetInt32() + selfResult.GetProperty("better_unsafe").GetInt32());
        Assert.Equal(3, selfResult.GetProperty("worse_safe").GetInt32() + selfResult.GetProperty("worse_unsafe").GetInt32());
        Assert.Equal(0.0, selfResult.GetProperty("helpfulness_win_rate").GetDouble());
        Assert.Equal(0.0, selfResult.GetProperty("harmlessness_win_rate").GetDouble());
        var selfSamples = Lines(Path.Combine(selfRun, "samples.jsonl"));
        Assert.All(selfSamples, s => Assert.Equal(s.GetProperty("response_a").GetString(), s.GetProperty("response_b").GetString()));
    }

    private static void AssertCleanFailure((int Code, string Out, string Error) r, params string[] mentions)
    {
        Assert.NotEqual(0, r.Code);
        foreach (var m in mentions) Assert.Contains(m, r.Error);
        Assert.DoesNotContain("   at ", r.Error);
        Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Theory]
    [InlineData("ppo-lag")]
    [InlineData("eval")]
    [InlineData("arena")]
    public void MissingRewardModelIsNamed(string command)
    {
        string missing = Path.Combine(_dir, "no-such-reward-run");
        var config = command == "ppo-lag" ? RlConfig(Model, missing, missing, PkuData(3), 1) : SamplingConfig(missing, missing, PkuData(3));
        if (command == "eval") config["policy"] = Model;
        if (command == "arena") { config["policy_a"] = Model; config["policy_b"] = Model; }
        AssertCleanFailure(Cli(command, "--config", Json("missing.json", config), "--out", Path.Combine(_dir, "run"), "--device", "cpu"),
            "reward_model", missing);

        config.Remove("reward_model");
        AssertCleanFailure(Cli(command, "--config", Json("absent.json", config), "--out", Path.Combine(_dir, "run2")), "'reward_model' is required");
    }

    [Fact]
    public void UnknownConfigKeyIsNamed()
    {
        string data = PkuData(3);
        var config = RlConfig(Model, "r", "c", data, 1);
        ((JsonObject)config["rl"]!)["kl_coef"] = 0.1;
        AssertCleanFailure(Cli("ppo-lag", "--config", Json("unknown.json", config), "--out", Path.Combine(_dir, "run")), "unknown config key 'rl.kl_coef'");
        AssertCleanFailure(Cli("ppo", "--config", Json("ok.json", RlConfig(Model, "r", "c", data, 1)), "--set", "rl.stepz=3",
            "--out", Path.Combine(_dir, "run2")), "rl.stepz");
        var eval = SamplingConfig("r", "c", data);
        eval["policy"] = Model;
        AssertCleanFailure(Cli("eval", "--config", Json("eval.json", eval), "--set", "max_new_token=3", "--out", Path.Combine(_dir, "run3")),
            "unknown config key 'max_new_token'");
    }

    [Fact]
    public void BadRlValueAndMissingConfigAreNamed()
    {
        var config = RlConfig(Model, "r", "c", PkuData(3), 1);
        AssertCleanFailure(Cli("ppo-lag", "--config", Json("bad.json", config), "--set", "rl.gamma=2", "--out", Path.Combine(_dir, "run")), "rl.gamma");
        AssertCleanFailure(Cli("arena", "--out", Path.Combine(_dir, "run2")), "--config");
        AssertCleanFailure(Cli("ppo", "--config", Json("kv.json", config), "--set", "kv_cache=f16", "--out", Path.Combine(_dir, "run3")),
            "config: 'kv_cache': unknown KV cache type 'f16' (valid: f32, bf16)");
        AssertCleanFailure(Cli("ppo", "--config", Json("mm.json", config), "--device", "cpu", "--matmul-inputs", "bf16", "--out", Path.Combine(_dir, "run4")),
            "--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not 'cpu'");
    }

    [Fact]
    public void PpoLagResumedAfterAStopGivesBitIdenticalStepsAndWeights()
    {
        string data = PkuData(6);
        string rewardRun = ScoreRun("reward", data);
        string costRun = ScoreRun("cost", data);
        string config = Json("ppo-lag.json", RlConfig(Model, rewardRun, costRun, data, steps: 4));
        string whole = Path.Combine(_dir, "whole"), split = Path.Combine(_dir, "split");

        Ok(Cli("ppo-lag", "--config", config, "--out", whole, "--device", "cpu", "--quiet"));
        Ok(Cli("ppo-lag", "--config", config, "--set", "stop_after_steps=2", "--out", split, "--device", "cpu", "--quiet"));
        Assert.Equal("checkpoint-2", File.ReadAllText(Path.Combine(split, "latest")).Trim());
        Assert.False(File.Exists(Path.Combine(split, "result.json")));
        var state = ReadJson(Path.Combine(split, "checkpoint-2", "trainer_state.json"));
        Assert.Equal(2, state.GetProperty("step").GetInt32());
        Assert.Equal(["actor", "cost_critic", "reward_critic"],
            state.GetProperty("optimizer_steps").EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal(4, state.GetProperty("lagrange").GetProperty("window").GetArrayLength()); // 2 steps × 2 episode costs
        Assert.True(File.Exists(Path.Combine(split, "checkpoint-2", "cost_critic.safetensors")));

        Ok(Cli("ppo-lag", "--resume", split, "--set", "stop_after_steps=0", "--device", "cpu", "--quiet"));

        // Every metric of every step (losses, λ, rewards, costs, KL) is bit-identical: the JSON lines are equal.
        var expected = File.ReadAllLines(Path.Combine(whole, "metrics.jsonl"));
        Assert.Equal(4, expected.Length);
        Assert.Equal(expected, File.ReadAllLines(Path.Combine(split, "metrics.jsonl")));
        Assert.True(Lines(Path.Combine(whole, "metrics.jsonl")).Select(m => m.GetProperty("lambda").GetDouble()).Distinct().Count() > 1,
            "λ should move from step to step");
        foreach (var file in new[] { "actor.safetensors", "checkpoint-4/reward_critic.safetensors", "checkpoint-4/cost_critic.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(whole, file)), File.ReadAllBytes(Path.Combine(split, file)));
        Assert.Equal(ReadJson(Path.Combine(whole, "result.json")).GetProperty("lambda_trace").GetRawText(),
            ReadJson(Path.Combine(split, "result.json")).GetProperty("lambda_trace").GetRawText());
    }

    [Fact]
    public void ResumingAPpoCheckpointAsPpoLagIsRefused()
    {
        string data = PkuData(6);
        string rewardRun = ScoreRun("reward", data);
        string costRun = ScoreRun("cost", data);
        string run = Path.Combine(_dir, "ppo");
        Ok(Cli("ppo", "--config", Json("ppo.json", RlConfig(Model, rewardRun, costRun, data, steps: 2)), "--set", "stop_after_steps=1",
            "--out", run, "--device", "cpu", "--quiet"));
        AssertCleanFailure(Cli("ppo-lag", "--resume", run, "--device", "cpu"), "'ppo' checkpoint, not 'ppo-lag'");
        File.Delete(Path.Combine(run, "checkpoint-1", "reward_critic.safetensors"));
        AssertCleanFailure(Cli("ppo", "--resume", run, "--device", "cpu"), "corrupt checkpoint", "reward_critic.safetensors");
    }

    [Fact]
    public void PpoWithPtxDataAddsThePtxTermAndAMissingHalfIsNamed()
    {
        string data = PkuData(6);
        string rewardRun = ScoreRun("reward", data);
        string costRun = ScoreRun("cost", data);
        string ptx = Write("ptx.jsonl", string.Join("\n",
            """{"instruction": "Tell a story.", "output": "Once upon a time there was a little dog."}""",
            """{"instruction": "Say hello.", "input": "to a friend", "output": "Hello, my good friend!"}""") + "\n");
        var config = RlConfig(Model, rewardRun, costRun, data, steps: 2);
        config["ptx_data"] = ptx;
        config["ptx_max_length"] = 64;
        config["rl"]!["ptx_coeff"] = 0.5;
        string run = Path.Combine(_dir, "ppo-ptx");
        Ok(Cli("ppo", "--config", Json("ppo-ptx.json", config), "--out", run, "--device", "cpu", "--quiet"));
        foreach (var m in Lines(Path.Combine(run, "metrics.jsonl")))
            Assert.True(m.TryGetProperty("ptx_loss", out var loss) && loss.GetDouble() > 0 && double.IsFinite(loss.GetDouble()), m.GetRawText());

        AssertCleanFailure(Cli("ppo", "--config", Json("ppo-ptx.json", config), "--set", "rl.ptx_coeff=0", "--out", Path.Combine(_dir, "x1"),
            "--device", "cpu"), "'ptx_data'", "rl.ptx_coeff");
        config.Remove("ptx_data");
        AssertCleanFailure(Cli("ppo", "--config", Json("ppo-ptx2.json", config), "--out", Path.Combine(_dir, "x2"), "--device", "cpu"),
            "'rl.ptx_coeff'", "no 'ptx_data'");
    }

    [Fact]
    public void HelpOfRlStagesOffersResume()
    {
        foreach (var command in new[] { "ppo", "ppo-lag", "reward-shaping" })
        {
            var r = Cli(command, "--help");
            Assert.Equal(0, r.Code);
            Assert.Contains("--resume", r.Out);
            Assert.Contains("stop_after_steps", r.Out);
        }
    }
}
