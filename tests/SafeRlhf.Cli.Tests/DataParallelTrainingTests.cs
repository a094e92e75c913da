using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>Data-parallel training in real two-rank MPI jobs on this machine: the same results as one rank with the
/// same global batch, bit-identical resume with sharded optimizer state, and a killed rank that ends the job without
/// harming the last checkpoint.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class DataParallelTrainingTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-dp-" + Guid.NewGuid().ToString("N"));

    public DataParallelTrainingTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static List<JsonElement> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static void Ok((int Code, string Out, string Error) r, string what) =>
        Assert.True(r.Code == 0, $"{what}: exit {r.Code}\n{r.Out}\n{r.Error}");

    private static (int Code, string Out, string Error) OneRank(params string[] args) => MpiHarness.Run(1, Timeout, args);

    [Fact]
    public void TwoRanksRunTheBuiltInPipelineAsOneRankWithTheSameGlobalBatch()
    {
        string[] settings = ["--set", "sft.steps=6", "--set", "reward.steps=4", "--set", "cost.steps=4", "--set", "rl.steps=3", "--quiet"];
        string one = Path.Combine(_dir, "one"), two = Path.Combine(_dir, "two");
        Ok(OneRank(["pipeline", "--out", one, .. settings]), "1 rank");
        Ok(MpiHarness.Run(2, Timeout, ["pipeline", "--out", two, .. settings]), "2 ranks");
        var a = Metrics(one);
        var b = Metrics(two);
        Assert.Equal(a.Count, b.Count);
        Assert.Contains(a, m => m.GetProperty("stage").GetString() == "ppo_lag");
        for (int i = 0; i < a.Count; i++)
        {
            string where = $"{a[i].GetProperty("stage")} step {a[i].GetProperty("step")}";
            Assert.Equal(a[i].GetProperty("stage").GetString(), b[i].GetProperty("stage").GetString());
            foreach (var p in a[i].EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number) continue;
                double x = p.Value.GetDouble(), y = b[i].GetProperty(p.Name).GetDouble();
                // The same prompts and the same sampled responses: lengths and token counts agree exactly.
                if (p.Name is "step" or "tokens" or "response_length") Assert.True(x == y, $"{where}: {p.Name} {x} vs {y}");
                else if (p.Name == "lambda") Assert.True(Math.Abs(x - y) <= 1e-6 * Math.Abs(x), $"{where}: λ {x} vs {y}");
                else Assert.True(Math.Abs(x - y) <= 1e-4 * Math.Max(1, Math.Abs(x)), $"{where}: {p.Name} {x} vs {y}");
            }
        }
    }

    private string SftConfig(int steps, bool shard, int? stopAfter = null, int rowCount = 8, double? evalSplit = null)
    {
        // Alpaca rows made from the first PKU-SafeRLHF prompts and their first responses.
        string data = Path.Combine(_dir, "alpaca.jsonl");
        var rows = File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(rowCount).Select(l =>
        {
            var row = JsonNode.Parse(l)!;
            return new JsonObject { ["instruction"] = (string?)row["prompt"], ["input"] = "", ["output"] = (string?)row["response_0"] }.ToJsonString();
        });
        File.WriteAllText(data, string.Join("\n", rows) + "\n");
        var config = new JsonObject
        {
            ["model"] = Assets.Require("models/stories260K.bin"),
            ["data"] = data,
            ["max_length"] = 256,
            ["seed"] = 5,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 4, ["lr"] = 3e-3, ["warmup_ratio"] = 0.0, ["shard_optimizer_state"] = shard },
        };
        if (stopAfter is { } s) config["stop_after_steps"] = s;
        if (evalSplit is { } e) (config["eval_split"], config["eval_every"]) = (e, 2);
        string path = Path.Combine(_dir, $"sft-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Fact]
    public void TwoRanksWithShardedOptimizerStateResumeBitIdenticallyAndMatchOneRank()
    {
        string one = Path.Combine(_dir, "one"), straight = Path.Combine(_dir, "straight"), resumed = Path.Combine(_dir, "resumed");
        Ok(OneRank("sft", "--config", SftConfig(4, shard: false), "--out", one, "--quiet"), "1 rank");
        Ok(MpiHarness.Run(2, Timeout, "sft", "--config", SftConfig(4, shard: true), "--out", straight, "--quiet"), "2 ranks");
        Ok(MpiHarness.Run(2, Timeout, "sft", "--config", SftConfig(4, shard: true, stopAfter: 2), "--out", resumed, "--quiet"), "2 ranks, first half");
        Ok(MpiHarness.Run(2, Timeout, "sft", "--resume", resumed, "--quiet"), "2 ranks, resumed");
        var s = File.ReadAllLines(Path.Combine(straight, "metrics.jsonl"));
        var r = File.ReadAllLines(Path.Combine(resumed, "metrics.jsonl"));
        Assert.Equal(4, s.Length);
        Assert.Equal(s, r);
        var a = Metrics(one);
        var b = Metrics(straight);
        for (int i = 0; i < a.Count; i++)
        {
            double x = a[i].GetProperty("loss").GetDouble(), y = b[i].GetProperty("loss").GetDouble();
            Assert.True(Math.Abs(x - y) <= 1e-5 * Math.Abs(x), $"step {i + 1}: loss {x} (1 rank) vs {y} (2 ranks, sharded)");
        }
    }

    [Fact]
    public void TwoRanksEvaluateTheWholeHeldOutSplitAsOneRankDoes()
    {
        string one = Path.Combine(_dir, "eval-one"), two = Path.Combine(_dir, "eval-two");
        Ok(OneRank("sft", "--config", SftConfig(4, shard: false, rowCount: 16, evalSplit: 0.25), "--out", one, "--quiet"), "1 rank");
        Ok(MpiHarness.Run(2, Timeout, "sft", "--config", SftConfig(4, shard: false, rowCount: 16, evalSplit: 0.25), "--out", two, "--quiet"), "2 ranks");
        var a = Metrics(one).Where(m => m.TryGetProperty("eval_loss", out _)).ToList();
        var b = Metrics(two).Where(m => m.TryGetProperty("eval_loss", out _)).ToList();
        Assert.Equal([2, 4], a.Select(m => m.GetProperty("step").GetInt32()));
        Assert.Equal([2, 4], b.Select(m => m.GetProperty("step").GetInt32()));
        for (int i = 0; i < a.Count; i++)
        {
            double x = a[i].GetProperty("eval_loss").GetDouble(), y = b[i].GetProperty("eval_loss").GetDouble();
            Assert.True(Math.Abs(x - y) <= 1e-5 * Math.Abs(x), $"step {2 * i + 2}: eval_loss {x} (1 rank) vs {y} (2 ranks)");
        }
    }

    [Fact]
    public async Task AKilledRankEndsTheJobNamingItAndTheLastCheckpointStaysUsable()
    {
        string run = Path.Combine(_dir, "killed");
        string config = SftConfig(100000, shard: false);
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["checkpoint_every"] = 1;
        File.WriteAllText(config, json.ToJsonString());
        using var job = MpiHarness.Start(2, "sft", "--config", config, "--out", run, "--quiet");
        var stdout = job.StandardOutput.ReadToEndAsync();
        var stderr = job.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(run, "latest")) && clock.Elapsed < Timeout && !job.HasExited) await Task.Delay(200);
        Assert.True(File.Exists(Path.Combine(run, "latest")), "no checkpoint appeared" + (job.HasExited ? $"\n{await stderr}" : ""));
        int victim = RankProcess(job.Id, rank: 1);
        Process.GetProcessById(victim).Kill();
        using (var timeout = new CancellationTokenSource(Timeout)) await job.WaitForExitAsync(timeout.Token);
        Assert.NotEqual(0, job.ExitCode);
        Assert.Contains("rank 1", await stdout + await stderr);
        string latest = Path.Combine(run, File.ReadAllText(Path.Combine(run, "latest")).Trim());
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(latest, "trainer_state.json")));
        Assert.True(state.RootElement.GetProperty("step").GetInt32() >= 1);
        var g = CliHarness.Run("generate", "--model", Path.Combine(latest, "model.safetensors"), "--prompt", "Once upon a time", "--max-new-tokens", "4", "--temperature", "0");
        Assert.True(g.Code == 0, g.Error);
    }

    /// <summary>The process of <paramref name="rank"/> among the children of mpirun.</summary>
    private static int RankProcess(int mpirun, int rank)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            foreach (var dir in Directory.GetDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    int parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                    if (parent != mpirun) continue;
                    var env = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                    if (env.Contains($"OMPI_COMM_WORLD_RANK={rank}")) return pid;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
            }
            Thread.Sleep(200);
        }
        throw new InvalidOperationException($"no child of mpirun {mpirun} is rank {rank}");
    }
}
