using System.Globalization;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The ceilings a CPU kernel is measured against, each probed in the same run, and the rule that picks one
/// per kernel: compute-bound int8-dot quantized matmuls on a CPU with VNNI → "vnni" (4 × the measured FMA rate: one
/// vpdpbusd does four int8 multiply-adds per 32-bit lane where an FMA does one f32 multiply-add; derived, not
/// probed); other compute-bound kernels → "fma"; memory-bound kernels whose bytes fit in the cache the CPU reports
/// (/proc/cpuinfo "cache size", 1 MiB when absent) → "cache" (the copy bandwidth over a buffer of half that
/// size); larger ones → "dram" (the copy bandwidth over 256 MiB).</summary>
public sealed record BenchCeilings(double FmaGflops, double DramGBps, double CacheGBps, long CacheBytes, bool Vnni)
{
    /// <summary>The kernels whose compute-bound cases run int8 dot products (activations quantized to int8).</summary>
    private static readonly string[] Int8Dot = ["quantized_matmul_q8_0", "quantized_matmul_q4_0", "quantized_matmul_q4_k", "quantized_matmul_q6_k", "quantized_matmul_q4_kx16", "quantized_matmul_q6_kx16"];

    public static BenchCeilings Probe(int threads, double seconds)
    {
        long cache = ReportedCacheBytes() ?? (1L << 20);
        return new BenchCeilings(NativeProbe.FmaPeakGflops(threads, seconds), NativeProbe.StreamGBps(256L << 20, threads, seconds),
            NativeProbe.StreamGBps(cache / 2, threads, seconds), cache, CpuFeatures.Detect().HasVnni);
    }

    /// <summary>The ceiling of <paramref name="c"/>: its name and its rate (GFLOP/s or GB/s).</summary>
    public (string Name, double Rate) For(KernelCase c)
    {
        if (c.ComputeBound)
            return Vnni && Int8Dot.Contains(c.Kernel) ? ("vnni", 4 * FmaGflops) : ("fma", FmaGflops);
        return c.Bytes <= CacheBytes ? ("cache", CacheGBps) : ("dram", DramGBps);
    }

    /// <summary>The first "cache size" of /proc/cpuinfo (Linux x86: the L2 of a core on AMD, the shared L3 on Intel).</summary>
    private static long? ReportedCacheBytes()
    {
        const string info = "/proc/cpuinfo";
        if (!File.Exists(info)) return null;
        foreach (var line in File.ReadLines(info))
        {
            if (!line.StartsWith("cache size", StringComparison.Ordinal)) continue;
            var value = line[(line.IndexOf(':') + 1)..].Trim().Split(' ');
            if (value.Length == 2 && value[1] == "KB" && long.TryParse(value[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb) && kb > 0)
                return kb * 1024;
        }
        return null;
    }
}
