using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The native boundary: status → typed exception with the native text, CPU features, probes,
/// thread control, and delegation of what has no native kernel.</summary>
public sealed class NativeInteropTests
{
    [Fact]
    public unsafe void FailingCallThrowsWithNativeMessage()
    {
        var ex = Assert.Throws<NativeKernelException>(() =>
            NativeMethods.Check(NativeMethods.sr_quantize_f32(NativeMethods.Q8_0, null, null, 33), "sr_quantize_f32"));
        Assert.Equal(NativeStatus.InvalidArgument, ex.Status);
        Assert.Contains("not a multiple of 32", ex.NativeMessage);
        Assert.IsAssignableFrom<BackendException>(ex);
    }

    [Fact]
    public void NegativeThreadCountIsRejected()
    {
        var ex = Assert.Throws<NativeKernelException>(() => NativeBackend.Threads = -1);
        Assert.Contains("thread count", ex.Message);
    }

    [Fact]
    public void CpuFeaturesAreConsistent()
    {
        var f = CpuFeatures.Detect();
        Assert.False(string.IsNullOrWhiteSpace(f.Brand));
        if (f.HasAvx512) Assert.True(f.HasAvx2Fma);
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx2.IsSupported, f.Flags.HasFlag(CpuFeatureFlags.Avx2));
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, f.Flags.HasFlag(CpuFeatureFlags.Avx512F));
    }

    [Fact]
    public void ProbesReportPlausibleCeilings()
    {
        double gflops = NativeProbe.FmaPeakGflops(threads: 1, seconds: 0.05);
        double gbps = NativeProbe.StreamGBps(16L << 20, threads: 1, seconds: 0.05);
        Assert.InRange(gflops, 1, 10000);
        Assert.InRange(gbps, 0.5, 5000);
    }

    [Fact]
    public void F64AndStridedOperandsWithoutAKernelAreRejectedByName()
    {
        var rng = new Rng(1);
        using var a = rng.NormalTensor(NativeDevice, DType.F64, 0, 1, 1, 4, 3);
        using var b = rng.NormalTensor(NativeDevice, DType.F64, 0, 1, 1, 3, 2);
        using var c = Tensor.Zeros(NativeDevice, DType.F64, 1, 4, 2);
        var e = Assert.Throws<BackendNotSupportedException>(() => NativeDevice.Backend.MatMul(a, b, c, false, false, false));
        Assert.Contains("MatMul", e.Message);
        Assert.Contains("F64 [1, 4, 3]", e.Message);

        // a strided (transposed) view as the x of a softmax: the tensor layer passes contiguous rows, the backend refuses others
        using var x = On(NativeDevice, Random(rng, 12), 3, 4);
        using var xt = x.Transpose(0, 1);
        using var y = Zeros(NativeDevice, 4, 3);
        e = Assert.Throws<BackendNotSupportedException>(() => NativeDevice.Backend.Softmax(xt, y, false));
        Assert.Contains("Softmax", e.Message);
        Assert.Contains("strided", e.Message);
    }

}
