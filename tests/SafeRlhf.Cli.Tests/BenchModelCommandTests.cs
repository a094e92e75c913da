using System.Text.Json;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>`saferlhf bench-model`: a prefill and a decode test on a real model file, reported as a table or JSON, and
/// errors that name the option.</summary>
[Collection(BenchProfileConsoleCollection.Name)]
public sealed class BenchModelCommandTests
{
    [Fact]
    public void ReportsPrefillAndDecodeRatesOfEachRepetition()
    {
        var (code, output, err) = CliHarness.Run("bench-model", "--model", Assets.Require("models/stories260K.bin"),
            "-p", "16", "-n", "8", "-r", "2", "--threads", "1", "--json");
        Assert.True(code == 0, err);
        var results = JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
        Assert.Equal(["pp16", "tg8"], results.Select(r => r.GetProperty("test").GetString()));
        foreach (var r in results)
        {
            Assert.Equal("stories260K.bin", r.GetProperty("model").GetString());
            Assert.Equal("F32", r.GetProperty("types").GetString());
            Assert.Equal(1, r.GetProperty("threads").GetInt32());
            int tokens = r.GetProperty("tokens").GetInt32();
            var seconds = r.GetProperty("seconds").EnumerateArray().Select(s => s.GetDouble()).ToArray();
            Assert.Equal(2, seconds.Length);
            Assert.All(seconds, s => Assert.True(s > 0));
            // The reported rates are the tokens over each repetition's seconds: their mean and their best.
            var rates = seconds.Select(s => tokens / s).ToArray();
            Assert.Equal(rates.Average(), r.GetProperty("mean_tokens_per_second").GetDouble(), 1e-9 * rates.Average());
            Assert.Equal(rates.Max(), r.GetProperty("best_tokens_per_second").GetDouble(), 1e-9 * rates.Max());
        }
        Assert.Equal(16, results[0].GetProperty("tokens").GetInt32());
        Assert.Equal(8, results[1].GetProperty("tokens").GetInt32());
    }

    [Theory]
    [InlineData("reference")]
    [InlineData("cpu")]
    public void Bf16KvCacheIsReported(string device)
    {
        var (code, output, err) = CliHarness.Run("bench-model", "--model", Assets.Require("models/stories260K.bin"),
            "-p", "4", "-n", "3", "-r", "1", "--device", device, "--kv-cache", "bf16", "--json");
        Assert.True(code == 0, err);
        var results = JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.Equal("F32 (KV cache BF16)", r.GetProperty("types").GetString()));
    }

    [Fact]
    public void TheTableHasOneRowPerTest()
    {
        var (code, output, err) = CliHarness.Run("bench-model", "--model", Assets.Require("models/stories260K.bin"), "-p", "8", "-n", "0", "-r", "1");
        Assert.True(code == 0, err);
        var rows = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("| stories260K.bin", StringComparison.Ordinal)).ToList();
        Assert.Single(rows);
        Assert.Contains("| pp8 |", rows[0]);
    }

    [Fact]
    public void ProfileAddsAPerOpTableForEachTest()
    {
        var (code, output, err) = CliHarness.Run("bench-model", "--model", Assets.Require("models/stories260K.bin"), "-p", "8", "-n", "4", "-r", "1", "--profile");
        Assert.True(code == 0, err);
        foreach (var test in new[] { "pp8", "tg4" })
        {
            int at = output.IndexOf($"{test}, one profiled run", StringComparison.Ordinal);
            Assert.True(at >= 0, output);
            var rows = output[at..].Split('\n').Skip(3).TakeWhile(l => l.StartsWith('|')).ToList();
            // the model's matrices are F32: its linear layers run as MatMul calls
            var matmul = rows.Single(r => r.StartsWith("| MatMul |", StringComparison.Ordinal));
            Assert.True(int.Parse(matmul.Split('|')[2].Trim()) > 0, matmul);
            Assert.Contains(rows, r => r.StartsWith("| (outside the backend) |", StringComparison.Ordinal));
        }
    }

    /// <summary>On the cpu device a Q4_0 file's matrices run row-interleaved by default (reported as Q4_0x16), as stored
    /// with --weight-layout file; a device without the layout and an unknown value are refused naming the option.</summary>
    [Fact]
    public void WeightLayoutIsReportedAndChecked()
    {
        string dir = Path.Combine(Path.GetTempPath(), "saferlhf-layout-" + Guid.NewGuid().ToString("N"));
        try
        {
            var init = CliHarness.Run("init", "--preset", "tiny", "--quantize", "q4_0", "--out", dir, "--quiet");
            Assert.True(init.Code == 0, init.Error);
            string model = init.Out.Trim();
            string Types(params string[] extra)
            {
                var (code, output, err) = CliHarness.Run(["bench-model", "--model", model, "-p", "4", "-n", "2", "-r", "1", "--json", .. extra]);
                Assert.True(code == 0, err);
                return JsonDocument.Parse(output).RootElement[0].GetProperty("types").GetString()!;
            }
            Assert.StartsWith("Q4_0x16", Types());
            Assert.StartsWith("Q4_0+", Types("--weight-layout", "file"));
            Assert.Equal(Types(), Types("--weight-layout", "interleaved"));
            var (bad, _, badErr) = CliHarness.Run("bench-model", "--model", model, "--weight-layout", "packed");
            Assert.Equal(1, bad);
            Assert.Contains("--weight-layout", badErr);
            var (gpu, _, gpuErr) = CliHarness.Run("bench-model", "--model", model, "-p", "4", "-n", "0", "-r", "1", "--device", "ilgpu-cpu",
                "--weight-layout", "interleaved");
            Assert.Equal(1, gpu);
            Assert.Contains("--weight-layout interleaved", gpuErr);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
        }
    }

    [Theory]
    [InlineData("-r", "0", "-r/--repetitions")]
    [InlineData("-p", "-1", "-p/--prompt-tokens")]
    [InlineData("-n", "-3", "-n/--new-tokens")]
    public void BadCountsNameTheOption(string option, string value, string named)
    {
        var (code, _, err) = CliHarness.Run("bench-model", "--model", Assets.Require("models/stories260K.bin"), option, value);
        Assert.Equal(1, code);
        Assert.Contains(named, err);
    }

    [Fact]
    public void AMissingModelIsNamed()
    {
        var (code, _, err) = CliHarness.Run("bench-model", "--model", "no-such-model.gguf");
        Assert.Equal(1, code);
        Assert.Contains("no-such-model.gguf", err);
    }
}
