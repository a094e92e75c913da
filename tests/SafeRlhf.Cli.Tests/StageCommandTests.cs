using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

[Collection(nameof(ConsoleCollection))]
public sealed class StageCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-stage-" + Guid.NewGuid().ToString("N"));

    public StageCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static (int Code, string Out, string Error) Cli(params string[] args) => CliHarness.Run(args);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string AlpacaData() => Write("alpaca.jsonl", string.Join("\n",
        """{"instruction": "Tell a story about a cat.", "input": "", "output": "Once upon a time there was a cat named Tom. He liked to play."}""",
        """{"instruction": "What did Lily see?", "input": "in the park", "output": "Lily saw a big red ball and a happy dog."}""",
        """{"instruction": "Say something kind.", "output": "You are a good friend and I like you."}""",
        """{"instruction": "Where is the sun?", "input": "", "output": "The sun is in the sky. It is warm and bright."}""") + "\n");

    /// <summary>The first <paramref name="count"/> rows of the PKU-SafeRLHF sample, optionally without one field in the second row.</summary>
    private string PkuData(int count, string? dropFieldInRow2 = null)
    {
        var lines = File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(count).ToList();
        if (dropFieldInRow2 is not null)
        {
            var row = JsonNode.Parse(lines[1])!.AsObject();
            Assert.True(row.Remove(dropFieldInRow2));
            lines[1] = row.ToJsonString();
        }
        return Write(dropFieldInRow2 is null ? "pku.jsonl" : "pku-bad.jsonl", string.Join("\n", lines) + "\n");
    }

    private string Config(string name, string data, int steps, string? model = null, string extra = "")
    {
        var config = new JsonObject
        {
            ["model"] = model ?? Assets.Require("models/stories260K.bin"),
            ["data"] = data,
            ["max_length"] = 64,
            ["seed"] = 7,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        };
        if (extra.Length > 0)
            foreach (var (k, v) in JsonNode.Parse(extra)!.AsObject()) config[k] = v?.DeepClone();
        return Write(name, config.ToJsonString());
    }

    private static List<JsonElement> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static long[] LossBits(string run) =>
        Metrics(run).Select(m => BitConverter.DoubleToInt64Bits(m.GetProperty("loss").GetDouble())).ToArray();

    [Fact]
    public void SftResumedAfterAStopGivesBitIdenticalLosses()
    {
        string config = Config("sft.json", AlpacaData(), steps: 6);
        string whole = Path.Combine(_dir, "whole"), split = Path.Combine(_dir, "split");

        var a = Cli("sft", "--config", config, "--out", whole, "--device", "cpu", "--quiet");
        Assert.True(a.Code == 0, a.Error);

        var b = Cli("sft", "--config", config, "--set", "stop_after_steps=3", "--out", split, "--device", "cpu", "--quiet");
        Assert.True(b.Code == 0, b.Error);
        Assert.Equal("checkpoint-3", File.ReadAllText(Path.Combine(split, "latest")).Trim());
        Assert.Equal(3, Metrics(split).Count);
        Assert.False(File.Exists(Path.Combine(split, "result.json")));

        var c = Cli("sft", "--resume", split, "--set", "stop_after_steps=0", "--device", "cpu", "--quiet");
        Assert.True(c.Code == 0, c.Error);

        var expected = LossBits(whole);
        Assert.Equal(6, expected.Length);
        Assert.True(expected.Distinct().Count() > 1, "losses should change from step to step");
        Assert.Equal(expected, LossBits(split));
        Assert.Equal(Enumerable.Range(1, 6), Metrics(split).Select(m => m.GetProperty("step").GetInt32()));
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "checkpoint-6", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(split, "checkpoint-6", "model.safetensors")));
        Assert.False(Directory.Exists(Path.Combine(split, "checkpoint-3")));
    }

    [Theory]
    [InlineData("reward")]
    [InlineData("cost")]
    [InlineData("dpo")]
    public void PreferenceStagesWriteCheckpointAndMetrics(string stage)
    {
        // PKU-SafeRLHF prompts are long in a 512-token vocabulary: leave room for the responses to differ.
        string config = Config($"{stage}.json", PkuData(6), steps: 3, extra: """{"checkpoint_every": 2, "max_length": 160}""");
        string run = Path.Combine(_dir, stage);
        var r = Cli(stage, "--config", config, "--out", run, "--device", "cpu", "--quiet");
        Assert.True(r.Code == 0, r.Error);

        Assert.Equal("checkpoint-3", File.ReadAllText(Path.Combine(run, "latest")).Trim());
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoint-2")));
        string checkpoint = Path.Combine(run, "checkpoint-3");
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "trainer_state.json")));
        Assert.Equal(stage, state.RootElement.GetProperty("stage").GetString());
        Assert.Equal(3, state.RootElement.GetProperty("step").GetInt32());
        Assert.Equal(3, state.RootElement.GetProperty("losses").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(checkpoint, "optimizer.safetensors")));

        var metrics = Metrics(run);
        Assert.Equal(3, metrics.Count);
        Assert.All(metrics, m => Assert.Equal(stage, m.GetProperty("stage").GetString()));
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.GetProperty("loss").GetDouble())));
        Assert.Equal(metrics.Select(m => m.GetProperty("loss").GetDouble()),
            state.RootElement.GetProperty("losses").EnumerateArray().Select(l => l.GetDouble()));

        string header = SafeRlhf.Llama.Formats.Safetensors.ReadHeaderJson(Path.Combine(checkpoint, "model.safetensors"));
        if (stage is "reward" or "cost") Assert.Contains("score_head.weight", header);
        else Assert.DoesNotContain("score_head", header);
    }

    private static void AssertCleanFailure((int Code, string Out, string Error) r, params string[] mentions)
    {
        Assert.NotEqual(0, r.Code);
        foreach (var m in mentions) Assert.Contains(m, r.Error);
        Assert.DoesNotContain("   at ", r.Error);
        Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void MissingModelFileIsNamed()
    {
        string missing = Path.Combine(_dir, "no-such-model.bin");
        string config = Config("missing.json", AlpacaData(), steps: 2, model: missing);
        AssertCleanFailure(Cli("sft", "--config", config, "--out", Path.Combine(_dir, "run")), "model not found", missing);
    }

    [Fact]
    public void UnknownConfigKeyIsNamed()
    {
        string config = Config("unknown.json", AlpacaData(), steps: 2, extra: """{"learning_rat": 0.1}""");
        AssertCleanFailure(Cli("sft", "--config", config, "--out", Path.Combine(_dir, "run")), "unknown config key 'learning_rat'");
        AssertCleanFailure(Cli("sft", "--config", Config("ok.json", AlpacaData(), 2), "--set", "train.stepz=3", "--out", Path.Combine(_dir, "run2")),
            "train.stepz");
    }

    [Fact]
    public void BadConfigValueIsNamed()
    {
        string config = Config("bad.json", AlpacaData(), steps: 2, extra: """{"max_length": 1}""");
        AssertCleanFailure(Cli("sft", "--config", config, "--out", Path.Combine(_dir, "run")), "max_length");
    }

    [Fact]
    public void Bf16MatMulInputsOffCudaAreNamed()
    {
        string config = Config("ok.json", AlpacaData(), steps: 2);
        AssertCleanFailure(Cli("sft", "--config", config, "--device", "ilgpu-cpu", "--matmul-inputs", "bf16", "--out", Path.Combine(_dir, "run")),
            "--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not 'ilgpu-cpu'");
        Assert.False(Directory.Exists(Path.Combine(_dir, "run")), "no run folder for a refused device");
    }

    [Theory]
    [InlineData("trainer_state.json", "{ \"format\": ")]
    [InlineData("model.safetensors", "not a safetensors file")]
    [InlineData("optimizer.safetensors", "\u0001\u0002")]
    public void CorruptCheckpointIsNamedOnResume(string file, string garbage)
    {
        string run = Path.Combine(_dir, "run");
        var first = Cli("sft", "--config", Config("sft.json", AlpacaData(), steps: 4), "--set", "stop_after_steps=2", "--out", run, "--quiet");
        Assert.True(first.Code == 0, first.Error);
        File.WriteAllText(Path.Combine(run, "checkpoint-2", file), garbage);
        AssertCleanFailure(Cli("sft", "--resume", run, "--set", "stop_after_steps=0"), "corrupt checkpoint");
        Assert.Equal(2, Metrics(run).Count);
    }

    [Fact]
    public void ResumeWithoutCheckpointIsNamed()
    {
        AssertCleanFailure(Cli("sft", "--resume", _dir, "--config", Config("sft.json", AlpacaData(), 2)), "no checkpoint");
    }

    [Fact]
    public void DataRowWithoutARequiredFieldIsNamed()
    {
        string config = Config("bad-data.json", PkuData(3, dropFieldInRow2: "better_response_id"), steps: 2);
        AssertCleanFailure(Cli("reward", "--config", config, "--out", Path.Combine(_dir, "run")), "pku-bad.jsonl:2:", "better_response_id");

        string sft = Write("alpaca-bad.jsonl", """{"instruction": "Hi", "output": "Hello."}""" + "\n" + """{"instruction": "Hi"}""" + "\n");
        AssertCleanFailure(Cli("sft", "--config", Config("bad-sft.json", sft, 2), "--out", Path.Combine(_dir, "run2")),
            "alpaca-bad.jsonl:2:", "'output'");
    }
}
