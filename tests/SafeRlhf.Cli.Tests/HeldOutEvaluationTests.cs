using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Rlhf.Data;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>Held-out evaluation of sft, reward and cost (eval_split, eval_every) and HH-RLHF rows for reward, cost and dpo.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class HeldOutEvaluationTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-heldout-" + Guid.NewGuid().ToString("N"));

    public HeldOutEvaluationTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static IEnumerable<string> HhLines()
    {
        using var gzip = new GZipStream(File.OpenRead(Assets.Require("data/hh-rlhf-harmless-base-test.jsonl.gz")), CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line) lines.Add(line);
        return lines;
    }

    /// <summary>The first <paramref name="count"/> HH-RLHF rows of the asset whose dialogues are short enough to keep
    /// chosen and rejected apart within 160 tokens of stories260K's tokenizer (about 400 characters).</summary>
    private string HhData(int count) => Write("hh.jsonl", string.Join("\n", HhLines().Where(l =>
    {
        var row = JsonNode.Parse(l)!;
        return row["chosen"]!.GetValue<string>().Length < 400 && row["rejected"]!.GetValue<string>().Length < 400;
    }).Take(count)) + "\n");

    private string PkuData(int count) => Write("pku.jsonl",
        string.Join("\n", File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(count)) + "\n");

    private string AlpacaData(int count) => Write("alpaca.jsonl", string.Join("\n", Enumerable.Range(0, count).Select(i =>
        new JsonObject { ["instruction"] = $"Tell story number {i}.", ["input"] = "", ["output"] = $"Once there was a cat. It had {i} toys and liked to play." }
            .ToJsonString())) + "\n");

    private string Config(string data, int steps, string extra = "")
    {
        var config = new JsonObject
        {
            ["model"] = Assets.Require("models/stories260K.bin"),
            ["data"] = data,
            ["max_length"] = 160,
            ["seed"] = 7,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        };
        if (extra.Length > 0)
            foreach (var (k, v) in JsonNode.Parse(extra)!.AsObject()) config[k] = v?.DeepClone();
        return Write($"config-{Guid.NewGuid():N}.json", config.ToJsonString());
    }

    private (string Run, string Out) Train(string stage, string config, params string[] more)
    {
        string run = Path.Combine(_dir, $"{stage}-{Guid.NewGuid():N}");
        var r = CliHarness.Run([stage, "--config", config, "--out", run, "--device", "cpu", .. more]);
        Assert.True(r.Code == 0, r.Error);
        return (run, r.Out);
    }

    private static List<JsonElement> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static int[] StepsWith(List<JsonElement> metrics, string key) =>
        metrics.Where(m => m.TryGetProperty(key, out _)).Select(m => m.GetProperty("step").GetInt32()).ToArray();

    [Fact]
    public void SplitHoldsOutFloorOfTheFractionDisjointlyAndByTheSeed()
    {
        var items = Enumerable.Range(0, 23).ToList();
        var (train, heldOut) = HeldOut.Split(items, 0.2, seed: 5);
        Assert.Equal(4, heldOut.Count);                                   // floor(23 × 0.2)
        Assert.Empty(train.Intersect(heldOut));
        Assert.Equal(items, train.Concat(heldOut).Order());
        Assert.Equal(train.Order(), train);                               // training examples keep their file order
        Assert.Equal(heldOut, HeldOut.Split(items, 0.2, seed: 5).HeldOut);
        Assert.NotEqual(heldOut, HeldOut.Split(items, 0.2, seed: 6).HeldOut);
        Assert.Empty(HeldOut.Split(items, 0.04, seed: 5).HeldOut);        // floor(0.92) = 0: no split
        Assert.Empty(HeldOut.Split(items, 0, seed: 5).HeldOut);
    }

    [Fact]
    public void SftEvaluatesTheHeldOutSplitEveryEvalEveryStepsAndAtTheEnd()
    {
        string data = AlpacaData(12);
        var (run, output) = Train("sft", Config(data, steps: 5, """{"eval_split": 0.25, "eval_every": 2}"""));
        Assert.Contains("9 examples", output);
        Assert.Contains("3 held out for evaluation", output);
        var metrics = Metrics(run);
        Assert.Equal([2, 4, 5], StepsWith(metrics, "eval_loss"));
        Assert.All(metrics.Where(m => m.TryGetProperty("eval_loss", out _)), m => Assert.InRange(m.GetProperty("eval_loss").GetDouble(), 1e-6, 20));
        Assert.True(File.Exists(Path.Combine(run, "plots", "loss.png")));

        // The split follows the seed alone: the same config gives the same held-out losses; eval_split 0 evaluates nothing.
        var again = Metrics(Train("sft", Config(data, steps: 5, """{"eval_split": 0.25, "eval_every": 2}""")).Run);
        Assert.Equal(metrics.Where(m => m.TryGetProperty("eval_loss", out _)).Select(m => m.GetProperty("eval_loss").GetDouble()),
            again.Where(m => m.TryGetProperty("eval_loss", out _)).Select(m => m.GetProperty("eval_loss").GetDouble()));
        Assert.Empty(StepsWith(Metrics(Train("sft", Config(data, steps: 2, """{"eval_split": 0}""")).Run), "eval_loss"));
        // Default 0.1 of 12 examples holds out one; evaluated at the last step when eval_every (50) exceeds the steps.
        Assert.Equal([2], StepsWith(Metrics(Train("sft", Config(data, steps: 2)).Run), "eval_loss"));
    }

    [Fact]
    public void EvaluationLeavesTrainingAndResumeBitIdentical()
    {
        string data = AlpacaData(12);
        string straight = Train("sft", Config(data, steps: 5, """{"eval_split": 0.25, "eval_every": 2}""")).Run;
        string config = Config(data, steps: 5, """{"eval_split": 0.25, "eval_every": 2, "stop_after_steps": 3}""");
        string split = Train("sft", config).Run;
        var resumed = CliHarness.Run("sft", "--resume", split, "--device", "cpu", "--quiet");
        Assert.True(resumed.Code == 0, resumed.Error);
        Assert.Equal(File.ReadAllLines(Path.Combine(straight, "metrics.jsonl")), File.ReadAllLines(Path.Combine(split, "metrics.jsonl")));
        // Evaluating does not change training: the losses with evaluation at every step are those with it every other step.
        string everyStep = Train("sft", Config(data, steps: 5, """{"eval_split": 0.25, "eval_every": 1}""")).Run;
        Assert.Equal(Metrics(straight).Select(m => m.GetProperty("loss").GetDouble()), Metrics(everyStep).Select(m => m.GetProperty("loss").GetDouble()));
    }

    [Theory]
    [InlineData("reward")]
    [InlineData("cost")]
    public void ScoreModelsReportHeldOutLossAndAccuracy(string stage)
    {
        var (run, output) = Train(stage, Config(PkuData(10), steps: 3, """{"eval_split": 0.3, "eval_every": 0}"""));
        Assert.Contains("3 held out for evaluation", output);
        var metrics = Metrics(run);
        Assert.Equal([3], StepsWith(metrics, "eval_accuracy"));
        var last = metrics[^1];
        Assert.True(double.IsFinite(last.GetProperty("eval_loss").GetDouble()));
        // Accuracy over 3 held-out pairs is a multiple of 1/3.
        double accuracy = last.GetProperty("eval_accuracy").GetDouble();
        Assert.Equal(Math.Round(accuracy * 3), accuracy * 3, 9);
        Assert.Equal(stage == "cost", last.TryGetProperty("eval_sign_accuracy", out _));
    }

    [Fact]
    public void BadEvalSplitIsRefusedNamingTheKey()
    {
        var r = CliHarness.Run("sft", "--config", Config(AlpacaData(4), steps: 1, """{"eval_split": 1.5}"""), "--out", Path.Combine(_dir, "bad"), "--device", "cpu");
        Assert.NotEqual(0, r.Code);
        Assert.Contains("'eval_split'", r.Error);
    }

    [Fact]
    public void HhRlhfPairsSplitIntoTheTemplatesPromptAndTheFinalResponses()
    {
        var pairs = HhRlhfReader.Read(Assets.Require("data/hh-rlhf-harmless-base-test.jsonl.gz"), skipMalformed: true).Rows.Take(50).ToList();
        Assert.Equal(PreferenceFormat.HhRlhf, PreferenceFormats.Detect(Assets.Require("data/hh-rlhf-harmless-base-test.jsonl.gz")));
        Assert.Equal(PreferenceFormat.PkuSafeRlhf, PreferenceFormats.Detect(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")));
        var lines = HhLines().ToList();
        foreach (var pair in pairs)
        {
            var (prompt, chosen, rejected) = PreferenceFormats.ForTemplate(pair);
            var row = JsonNode.Parse(lines[pair.LineNumber - 1])!;
            string chosenText = row["chosen"]!.GetValue<string>();
            // The transcript is "\n\nHuman: " + prompt + "\n\nAssistant:" + response, up to white space.
            Assert.Equal(Squeeze(chosenText), Squeeze($"Human: {prompt} Assistant: {chosen}"));
            Assert.Equal(Squeeze(row["rejected"]!.GetValue<string>()), Squeeze($"Human: {prompt} Assistant: {rejected}"));
            Assert.Contains(prompt, chosenText);
            Assert.False(prompt.EndsWith("Assistant:", StringComparison.Ordinal));
            Assert.False(prompt.StartsWith("Human:", StringComparison.Ordinal));
            Assert.EndsWith(rejected, row["rejected"]!.GetValue<string>().TrimEnd());
        }
    }

    private static string Squeeze(string s) => System.Text.RegularExpressions.Regex.Replace(s, @"\s+", " ").Trim();

    [Theory]
    [InlineData("reward")]
    [InlineData("dpo")]
    public void RewardAndDpoTrainOnHhRlhfRows(string stage)
    {
        var (run, output) = Train(stage, Config(HhData(10), steps: 2, """{"eval_split": 0.2}"""));
        Assert.Contains("examples from", output);
        var metrics = Metrics(run);
        Assert.Equal(2, metrics.Count);
        Assert.All(metrics, m => Assert.True(double.IsFinite(m.GetProperty("loss").GetDouble())));
        // Both evaluate their 2 held-out pairs at the last step: accuracy is a multiple of 1/2.
        Assert.Equal([2], StepsWith(metrics, "eval_accuracy"));
        double accuracy = metrics[^1].GetProperty("eval_accuracy").GetDouble();
        Assert.Contains(accuracy, new[] { 0, 0.5, 1 });
        Assert.True(double.IsFinite(metrics[^1].GetProperty("eval_loss").GetDouble()));
    }

    [Fact]
    public void RewardSkipsAndNamesHhRlhfRowsWithoutASharedPrompt()
    {
        // The asset's line 1255 has chosen and rejected dialogues that differ before their final turns: placed as line 31.
        var lines = HhLines().ToList();
        var broken = JsonNode.Parse(lines[1254])!;
        Assert.Throws<FormatException>(() => HhRlhfReader.Split(broken["chosen"]!.GetValue<string>(), broken["rejected"]!.GetValue<string>()));
        string data = Write("hh-mixed.jsonl", string.Join("\n", lines.Take(30).Append(lines[1254])) + "\n");
        string run = Path.Combine(_dir, "reward-hh-mixed");
        var r = CliHarness.Run("reward", "--config", Config(data, steps: 1, """{"max_length": 48}"""), "--out", run, "--device", "cpu");
        Assert.True(r.Code == 0, r.Error);
        Assert.Contains("skipped 1 HH-RLHF rows that are not a chosen/rejected pair with a shared prompt (lines 31)", r.Error);
        Assert.Contains("27 examples", r.Out);                 // 30 pairs less 3 held out
        Assert.Contains("(1 dropped)", r.Out);
        Assert.Contains("3 held out for evaluation", r.Out);   // default eval_split 0.1 of 30 pairs
        Assert.Equal([1], StepsWith(Metrics(run), "eval_accuracy"));
    }

    [Fact]
    public void CostRefusesHhRlhfRowsSayingWhy()
    {
        var r = CliHarness.Run("cost", "--config", Config(HhData(4), steps: 1), "--out", Path.Combine(_dir, "cost-hh"), "--device", "cpu");
        Assert.Equal(1, r.Code);
        Assert.Contains("HH-RLHF", r.Error);
        Assert.Contains("safe/unsafe labels", r.Error);
    }
}
