using System.Text.Json;
using SafeRlhf.Backends.Gpu;

namespace SafeRlhf.Cli.Tests;

/// <summary>Console redirection is process-wide: these tests run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class BenchProfileConsoleCollection
{
    public const string Name = "bench and profile console";
}

/// <summary>`saferlhf bench`, `saferlhf profile` and `saferlhf info` run in-process with tiny shapes.</summary>
[Collection(BenchProfileConsoleCollection.Name)]
public sealed class BenchProfileCommandTests
{
    private static (int Code, string Out, string Err) Saferlhf(params string[] args) => CliHarness.Run(args);

    private static List<JsonElement> JsonLines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();

    private static readonly string[] BenchKeys = ["kernel", "shape", "device", "threads", "seconds", "gflops", "gbps", "percent_of_peak"];

    private static void AssertBenchLine(JsonElement line, string device)
    {
        foreach (var key in BenchKeys) Assert.True(line.TryGetProperty(key, out _), $"missing \"{key}\" in {line}");
        Assert.Equal(device, line.GetProperty("device").GetString());
        Assert.True(line.GetProperty("threads").GetInt32() >= 1);
    }

    [Fact]
    public void BenchCpuPrintsTheProbesThenTheChosenKernelAsJson()
    {
        var (code, output, err) = Saferlhf("bench", "--quick", "--json", "--kernel", "rmsnorm_fwd", "--threads", "1");
        Assert.True(code == 0, err);
        var lines = JsonLines(output);
        foreach (var line in lines) AssertBenchLine(line, "cpu");
        Assert.Equal(["peak_fma_f32", "peak_stream", "peak_stream_cache", "rmsnorm_fwd"], lines.Select(l => l.GetProperty("kernel").GetString()));
        Assert.Equal(["fma", "dram", "cache", "cache"], lines.Select(l => l.GetProperty("ceiling").GetString()));
        Assert.True(lines[0].GetProperty("gflops").GetDouble() > 0);
        Assert.True(lines[1].GetProperty("gbps").GetDouble() > 0);
        var kernel = lines[3];
        Assert.Equal(1, kernel.GetProperty("threads").GetInt32());
        double seconds = kernel.GetProperty("seconds").GetDouble(), gbps = kernel.GetProperty("gbps").GetDouble();
        Assert.True(seconds > 0 && gbps > 0);
        // --quick's smoke shapes fit in the cache: the percentage is of the cache ceiling printed above
        double expected = 100 * gbps / lines[2].GetProperty("gbps").GetDouble();
        Assert.Equal(expected, kernel.GetProperty("percent_of_peak").GetDouble(), 1e-3 * expected);
    }

    [Fact]
    public void BenchQuickRunsEveryKernelInSecondsEachAgainstTheCeilingItNames()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (code, output, err) = Saferlhf("bench", "--quick", "--json", "--threads", "1");
        Assert.True(code == 0, err);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"bench --quick took {clock.Elapsed.TotalSeconds:F0} s");
        var lines = JsonLines(output);
        var probes = lines.Where(l => l.GetProperty("kernel").GetString()!.StartsWith("peak_", StringComparison.Ordinal))
            .ToDictionary(l => l.GetProperty("ceiling").GetString()!, l => l);
        Assert.Equal(["cache", "dram", "fma"], probes.Keys.Order());
        var rows = lines.Skip(3).ToList();
        Assert.Contains(rows, r => r.GetProperty("kernel").GetString() == "matmul_f32");
        foreach (var row in rows)
        {
            string ceiling = row.GetProperty("ceiling").GetString()!;
            bool compute = ceiling is "fma" or "vnni";
            double rate = compute ? row.GetProperty("gflops").GetDouble() : row.GetProperty("gbps").GetDouble();
            // vnni is 4 × the FMA probe (int8 multiply-adds per lane); the rest are probed rates.
            double peak = ceiling == "vnni" ? 4 * probes["fma"].GetProperty("gflops").GetDouble()
                : compute ? probes[ceiling].GetProperty("gflops").GetDouble() : probes[ceiling].GetProperty("gbps").GetDouble();
            double expected = 100 * rate / peak;
            Assert.True(Math.Abs(expected - row.GetProperty("percent_of_peak").GetDouble()) <= 1e-3 * expected + 1e-9, $"{row}");
            // Every smoke shape is cache-resident: no memory-bound row is measured against DRAM.
            Assert.NotEqual("dram", ceiling);
        }
    }

    [Fact]
    public void BenchOnTheIlgpuCpuAcceleratorRunsTheSmokeShapes()
    {
        var (code, output, err) = Saferlhf("bench", "--device", "ilgpu-cpu", "--quick", "--json", "--kernel", "swiglu_fwd");
        Assert.True(code == 0, err);
        var lines = JsonLines(output);
        foreach (var line in lines) AssertBenchLine(line, "ilgpu-cpu");
        Assert.Equal(["peak_fp32", "peak_dram", "swiglu_fwd"], lines.Select(l => l.GetProperty("kernel").GetString()));
        Assert.True(lines[2].GetProperty("seconds").GetDouble() > 0);
    }

    [Fact]
    public void BenchRejectsAnUnknownKernelNamingItAndTheValidOnes()
    {
        var (code, output, err) = Saferlhf("bench", "--quick", "--json", "--kernel", "no_such_kernel");
        Assert.NotEqual(0, code);
        Assert.Contains("'no_such_kernel'", err);
        Assert.Contains("matmul_f32", err);
        Assert.Contains("attention_bwd", err);
        Assert.Equal("", output);
    }

    [Fact]
    public void BenchRejectsADeviceItCannotBenchmark()
    {
        var (code, _, err) = Saferlhf("bench", "--device", "reference", "--quick");
        Assert.NotEqual(0, code);
        Assert.Contains("reference", err);
    }

    private static readonly string[] Tiny = ["--dim", "32", "--layers", "2", "--heads", "2", "--hidden", "96", "--vocab", "64", "--seq", "16", "--batch", "2"];

    [Fact]
    public void ProfileSftCountsTheModelsMatMulFlopsAndReportsTotals()
    {
        var (code, output, err) = Saferlhf(["profile", "--json", "--threads", "1", .. Tiny]);
        Assert.True(code == 0, err);
        var lines = JsonLines(output);
        var ops = lines.Where(l => l.GetProperty("op").GetString() != "total").ToDictionary(l => l.GetProperty("op").GetString()!);
        var total = Assert.Single(lines, l => l.GetProperty("op").GetString() == "total");

        // forward + backward of every projection: 3 × 2·tokens·params, with the classifier on T − 1 positions
        int d = 32, layers = 2, hidden = 96, vocab = 64, batch = 2, seq = 16;
        double forward = 2.0 * batch * seq * layers * (4 * d * d + 3 * d * hidden) + 2.0 * batch * (seq - 1) * d * vocab;
        Assert.Equal(3 * forward, ops["MatMul"].GetProperty("flops").GetDouble());
        Assert.Equal(layers, ops["Attention"].GetProperty("calls").GetInt64());
        Assert.Equal(layers, ops["AttentionBackward"].GetProperty("calls").GetInt64());
        Assert.True(ops["AdamW"].GetProperty("calls").GetInt64() > 0);

        Assert.Equal("sft", total.GetProperty("stage").GetString());
        Assert.Equal(batch * seq, total.GetProperty("tokens").GetInt64());
        double wall = total.GetProperty("wall_ms").GetDouble();
        double opMs = ops.Values.Sum(o => o.GetProperty("ms").GetDouble());
        Assert.True(opMs > 0 && opMs <= wall * 1.0001, $"ops {opMs} ms vs wall {wall} ms");
        Assert.Equal(batch * seq / (wall / 1e3), total.GetProperty("tokens_per_second").GetDouble(), 1e-6 * batch * seq / (wall / 1e3));
        double mfu = total.GetProperty("mfu").GetDouble();
        Assert.True(mfu > 0 && mfu < 100, $"mfu {mfu}");
    }

    [Fact]
    public void ProfileRolloutRunsOneForwardPerGeneratedToken()
    {
        var (code, output, err) = Saferlhf(["profile", "--stage", "rollout", "--new-tokens", "5", "--json", "--threads", "1", .. Tiny]);
        Assert.True(code == 0, err);
        var lines = JsonLines(output);
        var attention = Assert.Single(lines, l => l.GetProperty("op").GetString() == "Attention");
        Assert.Equal(2 * 5, attention.GetProperty("calls").GetInt64());
        Assert.DoesNotContain(lines, l => l.GetProperty("op").GetString() == "AdamW");
        var total = Assert.Single(lines, l => l.GetProperty("op").GetString() == "total");
        Assert.Equal(2 * 5, total.GetProperty("tokens").GetInt64());
    }

    [Fact]
    public void ProfilePrintsATablePerOp()
    {
        var (code, output, err) = Saferlhf(["profile", "--threads", "1", .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains("MatMul", output);
        Assert.Contains("share %", output);
        Assert.Contains("tokens/s", output);
        Assert.Contains("MFU", output);
    }

    [Fact]
    public void ProfileRejectsAnUnknownStage()
    {
        var (code, _, err) = Saferlhf(["profile", "--stage", "dpo", .. Tiny]);
        Assert.NotEqual(0, code);
        Assert.Contains("'dpo'", err);
    }

    [Fact]
    public void InfoPrintsTheNativeLibraryVersion()
    {
        var (code, output, err) = Saferlhf("info");
        Assert.True(code == 0, err);
        Assert.Matches(@"native library\s+libsaferlhf_native \d+\.\d+\.\d+", output);
    }

    [Fact]
    public void CudaCeilingsFollowFromDeviceProperties()
    {
        // H100 SXM5: 132 SMs at 1980 MHz, 5120-bit HBM3 at 2619 MHz
        var h100 = GpuKernelBench.PeakFromProperties("NVIDIA H100 80GB HBM3", 132, 1_980_000, 2_619_000, 5120, 9, 0)!;
        Assert.Equal(66_908, h100.Gflops, 1.0);
        Assert.Equal(3352.3, h100.Gbps, 0.1);
        Assert.Equal(132, h100.ComputeUnits);
        // A100 SXM4 40 GB: 108 SMs × 64 lanes at 1410 MHz
        var a100 = GpuKernelBench.PeakFromProperties("NVIDIA A100-SXM4-40GB", 108, 1_410_000, 1_215_000, 5120, 8, 0)!;
        Assert.Equal(19_492, a100.Gflops, 1.0);
        Assert.Equal(1555.2, a100.Gbps, 0.1);
        Assert.Null(GpuKernelBench.PeakFromProperties("unknown", 0, 0, 0, 0, 0, 0));
        Assert.Equal(51_200, GpuKernelBench.PeakFromTable("NVIDIA H100 PCIe")!.Gflops, 1.0);
        Assert.Null(GpuKernelBench.PeakFromTable("GeForce GTX 480"));
    }
}
