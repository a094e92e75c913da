using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>Runs the driver as a real child process to interrupt it with SIGINT, and drives a training run into a
/// non-finite loss: both must keep the last complete checkpoint and say how things stand.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed partial class InterruptionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-interrupt-" + Guid.NewGuid().ToString("N"));

    public InterruptionTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private string SftConfig(int steps, double lr, int checkpointEvery = 0)
    {
        string data = Path.Combine(_dir, "alpaca.jsonl");
        File.WriteAllText(data, string.Join("\n",
            """{"instruction": "Tell a story about a cat.", "input": "", "output": "Once upon a time there was a cat named Tom."}""",
            """{"instruction": "What did Lily see?", "input": "in the park", "output": "Lily saw a big red ball and a happy dog."}""",
            """{"instruction": "Where is the sun?", "input": "", "output": "The sun is in the sky. It is warm and bright."}""") + "\n");
        var config = new JsonObject
        {
            ["model"] = Assets.Require("models/stories260K.bin"),
            ["data"] = data,
            ["max_length"] = 64,
            ["seed"] = 9,
            ["checkpoint_every"] = checkpointEvery,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = lr, ["warmup_ratio"] = 0.0 },
        };
        string path = Path.Combine(_dir, $"sft-{steps}-{checkpointEvery}.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    private static string[] MetricLines(string run)
    {
        string path = Path.Combine(run, "metrics.jsonl");
        if (!File.Exists(path)) return [];
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n').Where(l => l.EndsWith('}')).ToArray();
    }

    private static JsonElement TrainerState(string run)
    {
        string name = File.ReadAllText(Path.Combine(run, "latest")).Trim();
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(run, name, "trainer_state.json"))).RootElement;
    }

    /// <summary>Starts `saferlhf` (the build beside this test assembly) as a child process with SIGINT at its default
    /// disposition: a test run started as a background job inherits SIGINT ignored, which the child would keep.</summary>
    private static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo("env")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("--default-signal=INT");
        info.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "saferlhf.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        return Process.Start(info) ?? throw new InvalidOperationException("could not start saferlhf");
    }

    [Fact]
    public async Task SigintSavesACheckpointAndResumeContinuesBitIdentically()
    {
        string config = SftConfig(steps: 1500, lr: 3e-3);
        string run = Path.Combine(_dir, "interrupted");
        using var child = Start("sft", "--config", config, "--out", run, "--device", "cpu", "--quiet");
        var stderrTask = child.StandardError.ReadToEndAsync();
        var stdoutTask = child.StandardOutput.ReadToEndAsync();
        try
        {
            var clock = Stopwatch.StartNew();
            while (MetricLines(run).Length < 3 && !child.HasExited)
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "no training steps within 120 s");
                await Task.Delay(20);
            }
            if (child.HasExited) Assert.Fail($"saferlhf exited before the interrupt: {await stderrTask}");
            using (var kill = Process.Start("kill", ["-INT", child.Id.ToString()])) await kill.WaitForExitAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await child.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!child.HasExited) child.Kill(entireProcessTree: true);
        }

        string stderr = await stderrTask, stdout = await stdoutTask;
        Assert.True(child.ExitCode == 130, $"exit code {child.ExitCode}; stderr: {stderr}; stdout: {stdout}");
        var match = InterruptedAt().Match(stderr);
        Assert.True(match.Success, stderr);
        Assert.DoesNotContain("   at ", stderr);
        int step = int.Parse(match.Groups[1].Value);
        Assert.InRange(step, 3, 1499);
        Assert.Equal($"checkpoint-{step}", File.ReadAllText(Path.Combine(run, "latest")).Trim());
        Assert.Equal(step, TrainerState(run).GetProperty("step").GetInt32());
        Assert.Empty(Directory.GetDirectories(run, "*.tmp"));

        // Resume for two more steps; an uninterrupted run stopped at the same step must agree bit for bit.
        int end = step + 2;
        var resumed = CliHarness.Run("sft", "--resume", run, "--set", $"stop_after_steps={end}", "--device", "cpu", "--quiet");
        Assert.True(resumed.Code == 0, resumed.Error);
        string whole = Path.Combine(_dir, "whole");
        var reference = CliHarness.Run("sft", "--config", config, "--set", $"stop_after_steps={end}", "--out", whole, "--device", "cpu", "--quiet");
        Assert.True(reference.Code == 0, reference.Error);

        Assert.Equal(end, MetricLines(whole).Length);
        Assert.Equal(MetricLines(whole), MetricLines(run));
        Assert.Equal(TrainerState(whole).GetProperty("losses").GetRawText(), TrainerState(run).GetProperty("losses").GetRawText());
        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, $"checkpoint-{end}", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(run, $"checkpoint-{end}", "model.safetensors")));
    }

    [Fact]
    public void NonFiniteLossStopsWithOneLineAndKeepsTheLastGoodCheckpoint()
    {
        // A learning rate of 1e30 moves every weight by about 1e30 in the first AdamW step: the next loss overflows.
        string run = Path.Combine(_dir, "diverged");
        var r = CliHarness.Run("sft", "--config", SftConfig(steps: 20, lr: 1e30, checkpointEvery: 1), "--out", run, "--device", "cpu", "--quiet");

        Assert.Equal(1, r.Code);
        Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("   at ", r.Error);
        var match = NonFiniteAt().Match(r.Error);
        Assert.True(match.Success, r.Error);
        int failed = int.Parse(match.Groups[1].Value);
        Assert.InRange(failed, 2, 20);

        // The checkpoint of the step before is complete and holds only finite losses; nothing newer was written.
        var state = TrainerState(run);
        Assert.Equal(failed - 1, state.GetProperty("step").GetInt32());
        Assert.All(state.GetProperty("losses").EnumerateArray(), l => Assert.True(double.IsFinite(l.GetDouble())));
        Assert.False(Directory.Exists(Path.Combine(run, $"checkpoint-{failed}")));
        Assert.Empty(Directory.GetDirectories(run, "*.tmp"));
        Assert.False(File.Exists(Path.Combine(run, "result.json")));
    }

    [GeneratedRegex(@"interrupted at step (\d+) of 1500; checkpoint .*checkpoint-\d+ \(continue with --resume ")]
    private static partial Regex InterruptedAt();

    [GeneratedRegex(@"^error: \w+ loss is \S+ at step (\d+); training stopped")]
    private static partial Regex NonFiniteAt();
}
