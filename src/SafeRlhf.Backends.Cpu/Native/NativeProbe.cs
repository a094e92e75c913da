namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>Machine ceilings measured by the native library in this process: the fp32 FMA rate and
/// streaming copy bandwidth. Benchmarks report each kernel as a percentage of these.</summary>
public static class NativeProbe
{
    /// <summary>Peak fp32 GFLOP/s of independent FMA chains on <paramref name="threads"/> threads
    /// (0: the native thread count), measured for about <paramref name="seconds"/>.</summary>
    public static double FmaPeakGflops(int threads = 0, double seconds = 0.3)
    {
        NativeMethods.Check(NativeMethods.sr_probe_fma_f32(seconds, threads, out double gflops), "sr_probe_fma_f32");
        return gflops;
    }

    /// <summary>Copy bandwidth in GB/s (bytes read + bytes written) over a buffer of
    /// <paramref name="bytes"/> bytes, well beyond the caches by default.</summary>
    public static double StreamGBps(long bytes = 256L << 20, int threads = 0, double seconds = 0.3)
    {
        NativeMethods.Check(NativeMethods.sr_probe_stream(bytes, seconds, threads, out double gbps), "sr_probe_stream");
        return gbps;
    }

    /// <summary>Threads the native kernels use; setting 0 restores the default: <see cref="ThreadCount.FromEnvironment"/>
    /// (SAFERLHF_THREADS, then OMP_NUM_THREADS, then the cores this process may use).</summary>
    /// <exception cref="ArgumentException">Setting 0 while one of those variables holds an invalid value.</exception>
    public static int Threads
    {
        get
        {
            NativeMethods.Check(NativeMethods.sr_get_num_threads(out int n), "sr_get_num_threads");
            return n;
        }
        set
        {
            int count = value == 0 ? ThreadCount.FromEnvironment().Count : value;
            NativeMethods.Check(NativeMethods.sr_set_num_threads(count), "sr_set_num_threads");
            Volatile.Write(ref s_configured, 1);
        }
    }

    private static int s_configured;

    /// <summary>Applies the default of <see cref="Threads"/> unless a count was already set in this process, so the
    /// environment variables hold from the first kernel on.</summary>
    internal static void EnsureConfigured()
    {
        if (Volatile.Read(ref s_configured) == 0) Threads = 0;
    }
}
