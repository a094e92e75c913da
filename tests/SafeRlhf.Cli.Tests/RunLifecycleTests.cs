using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>How training runs survive the ways they are stopped and continued: SIGTERM saves like Ctrl-C,
/// stop_after_steps applies once, --resume works from another folder and extends a finished run, and every
/// checkpoint folder carries its tokenizer and model.json so that it can be used on its own.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class RunLifecycleTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-lifecycle-" + Guid.NewGuid().ToString("N"));

    public RunLifecycleTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error + r.Out);

    private string Data(string folder)
    {
        string path = Path.Combine(folder, "alpaca.jsonl");
        File.WriteAllText(path, string.Join("\n",
            """{"instruction": "Tell a story about a cat.", "input": "", "output": "Once upon a time there was a cat named Tom."}""",
            """{"instruction": "What did Lily see?", "input": "in the park", "output": "Lily saw a big red ball and a happy dog."}""",
            """{"instruction": "Where is the sun?", "input": "", "output": "The sun is in the sky. It is warm and bright."}""") + "\n");
        return path;
    }

    private string Config(int steps, string? model = null, string? data = null, int? stopAfter = null, int? loraRank = null)
    {
        var config = new JsonObject
        {
            ["model"] = model ?? Assets.Require("models/stories260K.bin"),
            ["data"] = data ?? Data(_dir),
            ["max_length"] = 64,
            ["seed"] = 5,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = 3e-3, ["warmup_ratio"] = 0.0 },
        };
        if (stopAfter is { } s) config["stop_after_steps"] = s;
        if (loraRank is { } rank) config["lora"] = new JsonObject { ["rank"] = rank };
        string path = Path.Combine(_dir, $"sft-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    private static string[] Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.EndsWith('}')).ToArray();

    private static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    private static string Latest(string run) => Path.Combine(run, File.ReadAllText(Path.Combine(run, "latest")).Trim());

    [Fact]
    public void StopAfterStepsAppliesOnceAndResumeRunsToTheEnd()
    {
        string run = Path.Combine(_dir, "once");
        Ok(CliHarness.Run("sft", "--config", Config(steps: 4, stopAfter: 2), "--out", run, "--device", "cpu", "--quiet"));
        Assert.Equal(2, Metrics(run).Length);
        Assert.False(File.Exists(Path.Combine(run, "result.json")));

        // config.json still says stop_after_steps = 2; the resumed run has passed it and runs to the end.
        Ok(CliHarness.Run("sft", "--resume", run, "--device", "cpu", "--quiet"));
        Assert.Equal(4, Metrics(run).Length);
        Assert.Equal(4, Json(Path.Combine(run, "result.json")).GetProperty("steps").GetInt32());
    }

    [Fact]
    public void ResumeExtendsAFinishedRunWithMoreSteps()
    {
        string run = Path.Combine(_dir, "extend");
        Ok(CliHarness.Run("sft", "--config", Config(steps: 3), "--out", run, "--device", "cpu", "--quiet"));
        var before = Metrics(run);
        Assert.Equal(3, before.Length);

        Ok(CliHarness.Run("sft", "--resume", run, "--set", "train.steps=5", "--device", "cpu", "--quiet"));
        var after = Metrics(run);
        Assert.Equal(5, after.Length);
        Assert.Equal(before, after.Take(3));
        Assert.EndsWith("checkpoint-5", Latest(run));
        Assert.Equal(5, Json(Path.Combine(Latest(run), "trainer_state.json")).GetProperty("total_steps").GetInt32());

        var fewer = CliHarness.Run("sft", "--resume", run, "--set", "train.steps=4", "--device", "cpu", "--quiet");
        Assert.Equal(1, fewer.Code);
        Assert.Contains("train.steps", fewer.Error);
    }

    [Fact]
    public void ResumeFromAnotherFolderFindsTheFilesTheRunWasGivenAsRelativePaths()
    {
        string first = Directory.CreateDirectory(Path.Combine(_dir, "first")).FullName;
        string other = Directory.CreateDirectory(Path.Combine(_dir, "other")).FullName;
        File.Copy(Assets.Require("models/stories260K.bin"), Path.Combine(first, "model.bin"));
        File.Copy(Assets.Require("models/tok512.bin"), Path.Combine(first, "tok512.bin"));
        Data(first);
        string config = Config(steps: 4, model: "model.bin", data: "alpaca.jsonl", stopAfter: 2);
        string cwd = Directory.GetCurrentDirectory();
        try
        {
            Directory.SetCurrentDirectory(first);
            Ok(CliHarness.Run("sft", "--config", config, "--out", "run", "--device", "cpu", "--quiet"));
            Directory.SetCurrentDirectory(other);
            Ok(CliHarness.Run("sft", "--resume", Path.Combine(first, "run"), "--device", "cpu", "--quiet"));
        }
        finally
        {
            Directory.SetCurrentDirectory(cwd);
        }
        var saved = Json(Path.Combine(first, "run", "config.json"));
        Assert.Equal(Path.Combine(first, "model.bin"), saved.GetProperty("model").GetString());
        Assert.Equal(Path.Combine(first, "alpaca.jsonl"), saved.GetProperty("data").GetString());
        Assert.Equal(4, Metrics(Path.Combine(first, "run")).Length);
    }

    [Fact]
    public void ACheckpointFolderCarriesItsTokenizerAndModelJsonAndGeneratesWithoutTokenizer()
    {
        string run = Path.Combine(_dir, "selfcontained");
        Ok(CliHarness.Run("sft", "--config", Config(steps: 2), "--out", run, "--device", "cpu", "--quiet"));
        string checkpoint = Latest(run);
        Assert.Equal(File.ReadAllBytes(Assets.Require("models/tok512.bin")), File.ReadAllBytes(Path.Combine(checkpoint, "tokenizer.bin")));
        var manifest = Json(Path.Combine(checkpoint, "model.json"));
        Assert.Equal("model.safetensors", manifest.GetProperty("weights").GetString());
        Assert.Equal("tokenizer.bin", manifest.GetProperty("tokenizer").GetString());
        Assert.Equal(512, manifest.GetProperty("model_config").GetProperty("vocab_size").GetInt32());

        // Elsewhere, with no tokenizer beside the original model: the checkpoint alone is enough.
        string moved = Path.Combine(_dir, "moved");
        Directory.CreateDirectory(moved);
        foreach (var f in Directory.GetFiles(checkpoint)) File.Copy(f, Path.Combine(moved, Path.GetFileName(f)));
        var g = CliHarness.Run("generate", "--model", Path.Combine(moved, "model.safetensors"), "--prompt", "Once upon a time",
            "--max-new-tokens", "4", "--temperature", "0", "--device", "cpu");
        Ok(g);
        Assert.StartsWith("Once upon a time", g.Out.TrimStart());
    }

    [Fact]
    public void EveryTrainingCommandStartsWithALineSayingWhatTrains()
    {
        string run = Path.Combine(_dir, "summary");
        var r = CliHarness.Run("sft", "--config", Config(steps: 1), "--out", run, "--device", "cpu");
        Ok(r);
        var line = r.Out.Split('\n').First(l => l.StartsWith("sft: full fine-tuning", StringComparison.Ordinal));
        Assert.Matches(@"^sft: full fine-tuning, base F32, ([\d,]+) of \1 parameters train \(100\.00 %\)", line.Trim());

        string lora = Path.Combine(_dir, "summary-lora");
        var l = CliHarness.Run("sft", "--config", Config(steps: 1, loraRank: 2), "--out", lora, "--device", "cpu");
        Ok(l);
        Assert.Contains(l.Out.Split('\n'), x => x.StartsWith("sft: LoRA rank 2 on wq, wk, wv, wo, base F32, ", StringComparison.Ordinal));
    }

    [Fact]
    public void CheckpointEveryDefaultsToFiftySteps()
    {
        string run = Path.Combine(_dir, "default");
        Ok(CliHarness.Run("sft", "--config", Config(steps: 1), "--out", run, "--device", "cpu", "--quiet"));
        Assert.Equal(50, Json(Path.Combine(run, "config.json")).GetProperty("checkpoint_every").GetInt32());
    }

    [Fact]
    public async Task SigtermSavesACheckpointAndExits143()
    {
        string run = Path.Combine(_dir, "terminated");
        var info = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Signals at their default disposition: a test run started as a background job inherits some ignored.
        foreach (var a in new[] { "--default-signal", Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                     Path.Combine(AppContext.BaseDirectory, "saferlhf.dll"), "sft", "--config", Config(steps: 1500), "--out", run,
                     "--device", "cpu", "--quiet" })
            info.ArgumentList.Add(a);
        using var child = Process.Start(info)!;
        var stderrTask = child.StandardError.ReadToEndAsync();
        var stdoutTask = child.StandardOutput.ReadToEndAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            while ((!File.Exists(Path.Combine(run, "metrics.jsonl")) || ReadShared(Path.Combine(run, "metrics.jsonl")) < 3) && !child.HasExited)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "no training steps within 120 s");
                await Task.Delay(20);
            }
            if (child.HasExited) Assert.Fail($"saferlhf exited before SIGTERM: {await stderrTask}");
            using (var kill = Process.Start("kill", ["-TERM", child.Id.ToString()])) await kill.WaitForExitAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await child.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!child.HasExited) child.Kill(entireProcessTree: true);
        }
        string stderr = await stderrTask;
        await stdoutTask;
        Assert.True(child.ExitCode == 143, $"exit code {child.ExitCode}; stderr: {stderr}");
        Assert.Contains("interrupted at step ", stderr);
        int step = Json(Path.Combine(Latest(run), "trainer_state.json")).GetProperty("step").GetInt32();
        Assert.InRange(step, 3, 1499);
        Assert.Empty(Directory.GetDirectories(run, "*.tmp"));
        Ok(CliHarness.Run("sft", "--resume", run, "--set", $"stop_after_steps={step + 1}", "--device", "cpu", "--quiet"));
        Assert.EndsWith($"checkpoint-{step + 1}", Latest(run));
    }

    private static int ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n').Count(l => l.EndsWith('}'));
    }
}
