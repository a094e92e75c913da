using SafeRlhf.Backends.Gpu;

namespace SafeRlhf.Cli.Tests;

/// <summary>`bench --device cuda` measures each kernel against the ceiling of the hardware that should run it:
/// tensor cores for matrix products and attention, DRAM for matrix-vector products and elementwise kernels.</summary>
public sealed class GpuCeilingTests
{
    [Fact]
    public void TensorCoreCeilingsMatchTheDatasheets()
    {
        // A100 SXM4: 108 SMs at 1410 MHz; datasheet dense 156 TF32 and 312 BF16 TFLOP/s
        var a100 = GpuKernelBench.PeakFromProperties("NVIDIA A100-SXM4-40GB", 108, 1_410_000, 1_215_000, 5120, 8, 0)!;
        Assert.Equal(156_000, a100.Tf32Gflops, 0.005 * 156_000);
        Assert.Equal(312_000, a100.Bf16Gflops, 0.005 * 312_000);
        // H100 SXM5 at its 1830 MHz boost: datasheet dense 494.7 TF32 and 989.4 BF16 TFLOP/s
        var h100 = GpuKernelBench.PeakFromProperties("NVIDIA H100 80GB HBM3", 132, 1_830_000, 2_619_000, 5120, 9, 0)!;
        Assert.Equal(494_700, h100.Tf32Gflops, 0.005 * 494_700);
        Assert.Equal(989_400, h100.Bf16Gflops, 0.005 * 989_400);
        var table = GpuKernelBench.PeakFromTable("NVIDIA H100 PCIe")!;
        Assert.Equal(756_000, table.Bf16Gflops, 1.0);
    }

    [Theory]
    [InlineData("matmul_f32", "4096x4096x4096", true, "peak_tf32")]
    [InlineData("matmul_f32", "1x4096x4096 (decode)", true, "peak_dram")]
    [InlineData("matmul_bf16", "512x11008x4096", true, "peak_bf16")]
    [InlineData("quantized_matmul_q4_0", "64x11008x4096", true, "peak_bf16")]
    [InlineData("attention_fwd", "1x512x32x128", true, "peak_tf32")]
    [InlineData("rmsnorm_fwd", "512x4096", false, "peak_dram")]
    public void EachKernelIsMeasuredAgainstItsCeiling(string kernel, string shape, bool computeBound, string expected)
    {
        var h100 = GpuKernelBench.PeakFromTable("NVIDIA H100 80GB HBM3")!;
        var (name, value, _) = h100.CeilingFor(kernel, shape, computeBound);
        Assert.Equal(expected, name);
        Assert.Equal(expected switch { "peak_tf32" => 494_700, "peak_bf16" => 989_400, _ => 3350 }, value, 1.0);
    }

    [Fact]
    public void WithoutTensorCoresTheFp32CeilingIsUsed()
    {
        var cpu = new GpuPeak("host", 500, 20);
        Assert.Equal(("peak_fp32", 500.0, true), cpu.CeilingFor("matmul_f32", "64x64x64", true));
    }
}
