namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>SAFERLHF_REQUIRE_CUDA: a machine meant to test the GPU fails instead of passing on the CPU accelerator.</summary>
public sealed class RequireCudaTests
{
    [Fact]
    public void RequiringCudaWithoutADeviceFailsLoudly()
    {
        var e = Assert.Throws<InvalidOperationException>(() => GpuFixture.Choose("1", cudaAvailable: false));
        Assert.Contains("SAFERLHF_REQUIRE_CUDA=1", e.Message);
        Assert.Contains("refusing to fall back", e.Message);
    }

    [Fact]
    public void WithoutTheSwitchTheCpuAcceleratorIsNamed()
    {
        using var backend = GpuFixture.Choose(null, cudaAvailable: false);
        Assert.Equal("ilgpu-cpu", backend.Name);
        Assert.Contains("CPU", backend.AcceleratorInfo);
    }

    [Fact]
    public void AMistypedSwitchIsAnError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => GpuFixture.Choose("yes", cudaAvailable: false));
        Assert.Contains("SAFERLHF_REQUIRE_CUDA='yes'", e.Message);
    }
}
