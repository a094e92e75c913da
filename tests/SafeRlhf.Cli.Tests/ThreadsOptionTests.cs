using System.Text.Json;
using SafeRlhf.Backends.Cpu.Native;

namespace SafeRlhf.Cli.Tests;

/// <summary>`--threads` on every command that runs kernels, its precedence over SAFERLHF_THREADS and OMP_NUM_THREADS,
/// errors naming the option or variable, and `bench --busy`. Environment variables and the console are process-wide:
/// these tests share the console collection, which runs alone.</summary>
[Collection(BenchProfileConsoleCollection.Name)]
public sealed class ThreadsOptionTests
{
    /// <summary>Sets environment variables for a scope and restores the previous values.</summary>
    private sealed class Variables : IDisposable
    {
        private readonly Dictionary<string, string?> _saved = [];

        public Variables(string? own, string? omp)
        {
            Set(ThreadCount.Variable, own);
            Set(ThreadCount.OpenMpVariable, omp);
        }

        private void Set(string name, string? value)
        {
            _saved[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, value);
        }

        public void Dispose()
        {
            foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
            NativeBackend.Threads = 0;
        }
    }

    public static TheoryData<string> KernelCommands =>
        ["pipeline", "sft", "reward", "cost", "dpo", "ppo", "ppo-lag", "reward-shaping", "eval", "arena", "generate", "bench-model", "bench", "profile"];

    [Theory]
    [MemberData(nameof(KernelCommands))]
    public void EveryCommandThatRunsKernelsTakesThreads(string command)
    {
        var (code, output, err) = CliHarness.Run(command, "--help");
        Assert.True(code == 0, err);
        Assert.Contains("--threads", output);
        Assert.Contains(ThreadCount.Variable, output);
    }

    private static int BenchThreads(params string[] extra)
    {
        var (code, output, err) = CliHarness.Run(["bench", "--quick", "--json", "--kernel", "rmsnorm_fwd", .. extra]);
        Assert.True(code == 0, err);
        var last = output.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        return JsonDocument.Parse(last).RootElement.GetProperty("threads").GetInt32();
    }

    [Fact]
    public void TheOptionWinsOverTheVariablesAndTheProjectVariableOverOpenMp()
    {
        using (new Variables("1", "2"))
        {
            Assert.Equal(1, BenchThreads());
            Assert.Equal(3, BenchThreads("--threads", "3"));
        }
        using (new Variables(null, "2"))
            Assert.Equal(2, BenchThreads());
    }

    [Fact]
    public void DeviceFactorySetsTheResolvedCountForCpu()
    {
        using var variables = new Variables("2", null);
        DeviceFactory.Create("cpu", 0);
        Assert.Equal(2, NativeBackend.Threads);
        DeviceFactory.Create("cpu", 1);
        Assert.Equal(1, NativeBackend.Threads);
    }

    [Fact]
    public void AnInvalidVariableIsAnErrorNamingIt()
    {
        using var variables = new Variables("abc", null);
        var (code, output, err) = CliHarness.Run("bench", "--quick", "--kernel", "rmsnorm_fwd");
        Assert.Equal(1, code);
        Assert.Contains("SAFERLHF_THREADS", err);
        Assert.Contains("'abc'", err);
        Assert.Equal("", output);
    }

    [Fact]
    public void ANegativeOptionIsAnErrorNamingIt()
    {
        using var variables = new Variables(null, null);
        var (code, _, err) = CliHarness.Run("profile", "--threads", "-2", "--dim", "32", "--layers", "1");
        Assert.Equal(1, code);
        Assert.Contains("--threads", err);
        Assert.Contains("-2", err);
    }

    [Fact]
    public void BusyBenchReportsTheSlowdownNextToTheStolenCpu()
    {
        using var variables = new Variables(null, null);
        var (code, output, err) = CliHarness.Run("bench", "--busy", "--quick", "--json", "--kernel", "swiglu_fwd", "--threads", "2");
        Assert.True(code == 0, err);
        var line = JsonDocument.Parse(output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Single()).RootElement;
        Assert.Equal("swiglu_fwd", line.GetProperty("kernel").GetString());
        Assert.Equal(2, line.GetProperty("threads").GetInt32());
        Assert.True(line.GetProperty("alone_seconds").GetDouble() > 0);
        Assert.True(line.GetProperty("busy_seconds").GetDouble() > 0);
        double stolen = line.GetProperty("stolen_fraction").GetDouble();
        Assert.InRange(stolen, 0.0, 1.0);
        // time per call = CPU per call / CPU received, so the slowdown is the CPU lost times the change in CPU per call
        double slowdown = line.GetProperty("slowdown").GetDouble();
        double proportional = line.GetProperty("proportional_slowdown").GetDouble(), ratio = line.GetProperty("cpu_per_call_ratio").GetDouble();
        Assert.True(proportional > 0 && ratio > 0);
        Assert.Equal(slowdown, proportional * ratio, 3e-3 * slowdown);  // the JSON keeps 4 significant digits
    }

    [Fact]
    public void BusyBenchIsForTheCpuDevice()
    {
        var (code, _, err) = CliHarness.Run("bench", "--busy", "--device", "ilgpu-cpu", "--quick");
        Assert.Equal(1, code);
        Assert.Contains("--busy", err);
    }
}
