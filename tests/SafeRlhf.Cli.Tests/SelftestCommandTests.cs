using SafeRlhf.Backends.Gpu;
using SafeRlhf.Cli.Commands;

namespace SafeRlhf.Cli.Tests;

/// <summary>`saferlhf selftest`: on the ILGPU CPU accelerator every check passes at tiny shapes; asked for CUDA on
/// a machine without it, it fails with a one-line error and exit code 1.</summary>
[Collection(BenchProfileConsoleCollection.Name)]
public sealed class SelftestCommandTests
{
    [Fact]
    public void OnTheCpuAcceleratorEveryCheckPasses()
    {
        var (code, output, err) = CliHarness.Run("selftest", "--device", "ilgpu-cpu", "--no-bench", "--threads", "2");
        Assert.True(code == 0, output + err);
        foreach (var check in new[] { "matmul x·wᵀ", "quantized linear Q4_0", "attention decode (T=1)", "llama loss and gradients",
                     "training step (clip + adamw)", "rollout (greedy)", "rollout (T=0.8, top-p 0.9)", "host waits per decode token" })
            Assert.Contains("PASS  " + check, output);
        Assert.DoesNotContain("FAIL", output);
        Assert.Matches(@"selftest on .*: \d+ passed, 0 failed", output);
    }

    [Fact]
    public void WithoutCudaTheSelftestFailsLoudly()
    {
        var e = Assert.Throws<CliException>(() => SelftestCommand.RequireCuda(false));
        Assert.Contains("no CUDA device is usable", e.Message);
        if (GpuBackend.IsCudaAvailable)
        {
            var (ok, _, _) = CliHarness.Run("selftest", "--device", "cuda", "--shapes", "tiny", "--no-bench");
            Assert.True(ok is 0 or SelftestCommand.ChecksFailed);
            return;
        }
        var (code, output, err) = CliHarness.Run("selftest", "--device", "cuda");
        Assert.Equal(1, code);
        Assert.Contains("selftest --device cuda: no CUDA device is usable", err);
        Assert.DoesNotContain("PASS", output);
    }

    [Fact]
    public void AnUnknownDeviceIsABadOption()
    {
        var (code, _, err) = CliHarness.Run("selftest", "--device", "tpu");
        Assert.Equal(1, code);
        Assert.Contains("--device: selftest validates cuda, ilgpu-cpu, not 'tpu'", err);
    }

    [Fact]
    public void CuBlasIsOnlyForCuda()
    {
        var (code, _, err) = CliHarness.Run("selftest", "--device", "ilgpu-cpu", "--gemm", "cublas");
        Assert.Equal(1, code);
        Assert.Contains("--gemm cublas: cuBLAS runs only on --device cuda", err);
    }

    [Fact]
    public void Bf16MatMulInputsAreOnlyForCuda()
    {
        var (code, _, err) = CliHarness.Run("selftest", "--device", "ilgpu-cpu", "--matmul-inputs", "bf16");
        Assert.Equal(1, code);
        Assert.Contains("--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not 'ilgpu-cpu'", err);
    }
}
