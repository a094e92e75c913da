using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.TestSupport;
using SafeRlhf.TestSupport.Fuzz;
using Xunit.Abstractions;

namespace SafeRlhf.Cli.Tests.Fuzz;

/// <summary>The driver's own readers under seeded structure-aware mutation: stage and RL configs (--config), and a
/// checkpoint's trainer_state.json and optimizer.safetensors (from a real two-step SFT run on stories260K). Each input
/// must be read or refused with a <see cref="CliException"/> (or a reader's typed exception) within the time limit and
/// the allocation bound. One line per reader in <see cref="All"/>.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class CliInputFuzzTests(ITestOutputHelper output)
{
    private static bool Typed(Exception e) => e is CliException or Llama.Formats.InputFormatException;

    private static FuzzTarget Target(string name, FuzzInputKind kind, Func<string> seed, string fileName, Action<string> read) =>
        new(name, kind, seed, fileName, read, Typed);

    /// <summary>The readers under fuzzing, one line each.</summary>
    public static readonly IReadOnlyList<FuzzTarget> All =
    [
        Target("sft-config", FuzzInputKind.Json, () => Seeds.SftConfig, "sft.json", p => ConfigLoader.Load(new SftConfig(), p, []).Validate()),
        Target("ppo-lag-config", FuzzInputKind.Json, () => Seeds.RlConfig, "rl.json", p => ConfigLoader.Load(new RlConfig(), p, []).Validate()),
        Target("trainer-state", FuzzInputKind.Json, () => Path.Combine(Seeds.Run, "checkpoint-2", RunCheckpoints.StateFile),
            Path.Combine("checkpoint-2", RunCheckpoints.StateFile), p => RunCheckpoints.ReadLatest(p, "sft")) with { ReadFolder = true, Template = () => Seeds.Run },
        Target("optimizer-moments", FuzzInputKind.Binary, () => Path.Combine(Seeds.Run, "checkpoint-2", RunCheckpoints.OptimizerFile),
            Path.Combine("checkpoint-2", RunCheckpoints.OptimizerFile), p => RunCheckpoints.ReadLatest(p, "sft")) with { ReadFolder = true, Template = () => Seeds.Run, DefaultInputs = 250 },
    ];

    /// <summary>xUnit cases: the target names.</summary>
    public static TheoryData<string> Targets => new(All.Select(t => t.Name));

    [Theory]
    [MemberData(nameof(Targets))]
    public void ReaderSurvivesMutatedInputs(string name)
    {
        FuzzRunner.RunAndAssert(All.Single(t => t.Name == name), output);
    }

    /// <summary>Seeds written once: configs naming the shared assets, and the run folder of a real two-step SFT run.</summary>
    private static class Seeds
    {
        private static readonly Lazy<string> s_folder = new(Build);

        public static string SftConfig => Path.Combine(s_folder.Value, "sft.json");

        public static string RlConfig => Path.Combine(s_folder.Value, "rl.json");

        public static string Run => Path.Combine(s_folder.Value, "run");

        private static string Build()
        {
            string dir = Path.Combine(Path.GetTempPath(), $"saferlhf-fuzz-cli-{Guid.NewGuid():N}");
            Directory.CreateDirectory(dir);
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                try { Directory.Delete(dir, recursive: true); }
                catch (IOException) { }
            };
            string model = Assets.Require("models/stories260K.bin");
            string data = Path.Combine(dir, "alpaca.jsonl");
            File.WriteAllLines(data, File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(8)
                .Select(l => JsonNode.Parse(l)!.AsObject())
                                // Short pieces of the real rows: the run only has to write a checkpoint.
                .Select(r => JsonSerializer.Serialize(new { instruction = Head((string)r["prompt"]!, 40), input = "", output = Head((string)r["response_0"]!, 60) })));
            var sft = new JsonObject
            {
                ["model"] = model, ["data"] = data, ["max_length"] = 128, ["seed"] = 3,
                ["train"] = new JsonObject { ["steps"] = 4, ["batch_size"] = 2, ["lr"] = 1e-3, ["warmup_ratio"] = 0.0 },
            };
            File.WriteAllText(Path.Combine(dir, "sft.json"), sft.ToJsonString());
            var rl = new JsonObject
            {
                ["actor"] = model, ["reward_model"] = Path.Combine(dir, "reward"), ["cost_model"] = Path.Combine(dir, "cost"),
                ["data"] = Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl"),
                ["rl"] = new JsonObject { ["steps"] = 2, ["batch_size"] = 2, ["gamma"] = 1.0, ["threshold"] = -1.0 },
            };
            File.WriteAllText(Path.Combine(dir, "rl.json"), rl.ToJsonString());
            var r = CliHarness.Run("sft", "--config", Path.Combine(dir, "sft.json"), "--set", "stop_after_steps=2", "--out", Path.Combine(dir, "run"), "--quiet");
            if (r.Code != 0) throw new InvalidOperationException($"seed run failed: {r.Error}");
            return dir;
        }

        private static string Head(string text, int length) => text.Length <= length ? text : text[..length];
    }
}
