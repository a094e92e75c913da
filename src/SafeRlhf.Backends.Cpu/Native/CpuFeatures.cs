using System.Runtime.InteropServices;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>Instruction-set extensions the native kernels dispatch on (SR_CPU_* bits of saferlhf.h).</summary>
[Flags]
public enum CpuFeatureFlags : uint
{
    None = 0,
    Sse42 = 1 << 0,
    Avx2 = 1 << 1,
    Fma = 1 << 2,
    F16c = 1 << 3,
    Avx512F = 1 << 4,
    Avx512BW = 1 << 5,
    Avx512VL = 1 << 6,
    Avx512Vnni = 1 << 7,
    Avx512Bf16 = 1 << 8,
    AvxVnni = 1 << 9,
    Avx512Vbmi = 1 << 10,
}

/// <summary>The CPU as the native library sees it: feature bits and brand string.</summary>
public sealed record CpuFeatures(CpuFeatureFlags Flags, string Brand)
{
    public bool HasAvx512 => Flags.HasFlag(CpuFeatureFlags.Avx512F | CpuFeatureFlags.Avx512BW | CpuFeatureFlags.Avx512VL);
    public bool HasAvx2Fma => Flags.HasFlag(CpuFeatureFlags.Avx2 | CpuFeatureFlags.Fma);
    public bool HasVnni => Flags.HasFlag(CpuFeatureFlags.Avx512Vnni) || Flags.HasFlag(CpuFeatureFlags.AvxVnni);

    /// <summary>The widest fp32 kernel family the native library will use.</summary>
    public string KernelIsa => HasAvx512 ? "avx512" : HasAvx2Fma ? "avx2" : "scalar";

    /// <summary>Probes the CPU through the native library.</summary>
    public static unsafe CpuFeatures Detect()
    {
        byte* brand = stackalloc byte[64];
        NativeMethods.Check(NativeMethods.sr_cpu_features(out uint bits, brand, 64), "sr_cpu_features");
        return new CpuFeatures((CpuFeatureFlags)bits, Marshal.PtrToStringUTF8((IntPtr)brand) ?? "");
    }

    /// <summary>The native library's version string (<c>sr_version</c>).</summary>
    public static string NativeVersion()
    {
        NativeMethods.Check(NativeMethods.sr_version(out IntPtr version), "sr_version");
        return Marshal.PtrToStringUTF8(version) ?? "";
    }

    public override string ToString() => $"{Brand} [{Flags}]";
}
