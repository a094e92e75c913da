using System.Diagnostics;
using System.Globalization;
using ILGPU;
using ILGPU.Runtime.Cuda;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu;

/// <summary>The ceilings a GPU benchmark divides by: fp32 FLOP/s of the CUDA cores, dense tensor-core FLOP/s with
/// TF32 and with BF16 inputs (0 when unknown, e.g. on the CPU accelerator), and DRAM bandwidth, with where the
/// numbers came from. <see cref="ComputeUnits"/>: SMs on CUDA (0 when unknown), worker threads on the CPU accelerator.</summary>
public sealed record GpuPeak(string Source, double Gflops, double Gbps, int ComputeUnits = 0, double Tf32Gflops = 0, double Bf16Gflops = 0)
{
    public override string ToString()
    {
        string tensor = Tf32Gflops > 0 ? FormattableString.Invariant($", {Tf32Gflops / 1e3:F0} TF32 / {Bf16Gflops / 1e3:F0} BF16 tensor-core") : "";
        return FormattableString.Invariant($"{Gflops / 1e3:F1} TFLOP/s fp32{tensor}, {Gbps:F0} GB/s ({Source})");
    }

    /// <summary>The ceiling a case is measured against: DRAM for memory-bound kernels and for matrix-vector
    /// products (one row: every weight is read once per two FLOPs); for matrix products and attention the
    /// tensor-core rate of their input type (BF16 for BF16 and quantized weights, TF32 for fp32), where the device has
    /// tensor cores; the fp32 CUDA-core rate otherwise.</summary>
    public (string Name, double Value, bool Compute) CeilingFor(string kernel, string shape, bool computeBound)
    {
        bool product = kernel.Contains("gemm") || kernel.Contains("matmul");
        if (!computeBound || (product && shape.StartsWith("1x", StringComparison.Ordinal))) return ("peak_dram", Gbps, false);
        if (product && (kernel.Contains("bf16") || kernel.StartsWith("quantized_matmul", StringComparison.Ordinal)) && Bf16Gflops > 0)
            return ("peak_bf16", Bf16Gflops, true);
        if ((product || kernel.StartsWith("attention", StringComparison.Ordinal)) && Tf32Gflops > 0) return ("peak_tf32", Tf32Gflops, true);
        return ("peak_fp32", Gflops, true);
    }
}

/// <summary>Benchmarks the ILGPU kernels through <see cref="IBackend"/> with the napkin math of
/// <c>KernelBench</c>: on CUDA at LLaMA-7B shapes (dim 4096, hidden 11008, 32 heads × 128, vocab 32000,
/// sequence 512 / 2048), on the ILGPU CPU accelerator at tiny smoke shapes (it exists for correctness, so its
/// figures only show that the harness runs). Each figure is the best per-launch time over repeated samples,
/// each sample a burst of launches followed by one device synchronisation, so launch overhead is amortised
/// the way a training step amortises it.</summary>
public static class GpuKernelBench
{
    /// <summary>Names accepted by <see cref="Run"/>'s kernel filter (those of the CPU <c>KernelBench</c>).</summary>
    public static IReadOnlyList<string> Kernels => KernelCases.Kernels;

    /// <summary>Runs every kernel whose name contains <paramref name="kernel"/> (all when null) on
    /// <paramref name="backend"/>; writes one line per result (JSON objects when <paramref name="json"/>),
    /// the ceilings first, and returns the results. CUDA uses LLaMA-7B shapes (<paramref name="quick"/>: shorter
    /// sequences and a 1024³ GEMM); the CPU accelerator uses smoke shapes.</summary>
    public static IReadOnlyList<KernelBenchResult> Run(GpuBackend backend, string? kernel, bool json, TextWriter output,
        GpuPeak peak, int threads, bool quick = false)
    {
        ArgumentNullException.ThrowIfNull(backend);
        bool cuda = backend.Name == "cuda";
        var dims = cuda ? quick ? KernelShapes.Llama7BQuick : KernelShapes.Llama7B : quick ? KernelShapes.SmokeQuick : KernelShapes.Smoke;
        double budget = cuda ? quick ? 0.1 : 0.5 : quick ? 0.02 : 0.1;
        var results = new List<KernelBenchResult>();
        void Emit(KernelBenchResult r)
        {
            results.Add(r);
            output.WriteLine(json ? r.ToJson() : r.ToString());
        }
        Emit(new("peak_fp32", peak.Source, backend.Name, threads, 0, peak.Gflops, 0, 100));
        Emit(new("peak_dram", peak.Source, backend.Name, threads, 0, 0, peak.Gbps, 100));
        if (peak.Tf32Gflops > 0) Emit(new("peak_tf32", peak.Source, backend.Name, threads, 0, peak.Tf32Gflops, 0, 100));
        if (peak.Bf16Gflops > 0) Emit(new("peak_bf16", peak.Source, backend.Name, threads, 0, peak.Bf16Gflops, 0, 100));
        var device = new Device(backend);
        foreach (var c in KernelCases.For(device, dims))
        {
            if (kernel is not null && !c.Kernel.Contains(kernel, StringComparison.OrdinalIgnoreCase)) continue;
            using var scope = new TensorScope();
            var run = c.Setup();
            backend.Synchronize();
            double seconds = Time(run, backend.Synchronize, budget);
            double gflops = c.Flops / seconds / 1e9, gbps = c.Bytes / seconds / 1e9;
            var ceiling = peak.CeilingFor(c.Kernel, c.Shape, c.ComputeBound);
            double pct = 100 * (ceiling.Compute ? gflops : gbps) / ceiling.Value;
            Emit(new(c.Kernel, c.Shape, backend.Name, threads, seconds, gflops, gbps, pct));
        }
        return results;
    }

    /// <summary>Best seconds per launch: one warm-up (compiles the kernel), then samples of a burst of
    /// launches (sized so a sample takes about a millisecond, at most 64) each ended by a synchronisation,
    /// until about <paramref name="budget"/> seconds are spent (at least 3 samples, at most 50).</summary>
    private static double Time(Action run, Action synchronize, double budget)
    {
        run();
        synchronize();
        long t0 = Stopwatch.GetTimestamp();
        run();
        synchronize();
        double single = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        int burst = (int)Math.Clamp(1e-3 / Math.Max(single, 1e-7), 1, 64);
        double best = single, spent = single;
        int samples = 0;
        while ((spent < budget || samples < 3) && samples < 50)
        {
            long start = Stopwatch.GetTimestamp();
            for (int i = 0; i < burst; i++) run();
            synchronize();
            double dt = Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Min(best, dt / burst);
            spent += dt;
            samples++;
        }
        return best;
    }

    // ---------------- device ceilings ----------------

    /// <summary>fp32 lanes (FMA units) per SM by compute capability; 0 when unknown.</summary>
    public static int Fp32LanesPerSm(int major, int minor) => (major, minor) switch
    {
        (6, 0) => 64,
        (6, _) => 128,
        (7, _) => 64,
        (8, 0) => 64,
        (8, _) => 128,
        (9, _) => 128,
        ( >= 10, _) => 128,
        _ => 0,
    };

    /// <summary>Dense tensor-core FLOPs per clock per SM with (TF32, BF16) inputs by compute capability (NVIDIA
    /// architecture whitepapers: A100 1024/2048, GA10x/AD10x 512/1024, H100 2048/4096); (0, 0) when unknown.</summary>
    public static (int Tf32, int Bf16) TensorFlopsPerClockPerSm(int major, int minor) => (major, minor) switch
    {
        (8, 0) => (1024, 2048),
        (8, _) => (512, 1024),
        (9, 0) => (2048, 4096),
        _ => (0, 0),
    };

    /// <summary>Ceilings from device properties: SMs × fp32 lanes × 2 FLOPs (FMA) × SM clock (tensor cores: SMs ×
    /// <see cref="TensorFlopsPerClockPerSm"/> × SM clock), and
    /// 2 (double data rate) × memory clock × bus width / 8. Clocks are in kHz, as CUDA reports them.
    /// Null when a property is missing.</summary>
    public static GpuPeak? PeakFromProperties(string name, int multiprocessors, int clockKhz, int memoryClockKhz,
        int memoryBusBits, int major, int minor)
    {
        int lanes = Fp32LanesPerSm(major, minor);
        if (multiprocessors <= 0 || clockKhz <= 0 || memoryClockKhz <= 0 || memoryBusBits <= 0 || lanes == 0) return null;
        double gflops = multiprocessors * lanes * 2.0 * clockKhz * 1e3 / 1e9;
        double gbps = 2.0 * memoryClockKhz * 1e3 * memoryBusBits / 8 / 1e9;
        var (tf32, bf16) = TensorFlopsPerClockPerSm(major, minor);
        double perClock = multiprocessors * clockKhz * 1e3 / 1e9;
        return new GpuPeak(string.Create(CultureInfo.InvariantCulture,
            $"{name}: sm_{major}{minor}, {multiprocessors} SMs × {lanes} lanes at {clockKhz / 1e3:F0} MHz, {memoryBusBits}-bit memory at {memoryClockKhz / 1e3:F0} MHz"),
            gflops, gbps, multiprocessors, tf32 * perClock, bf16 * perClock);
    }

    /// <summary>Datasheet ceilings (NVIDIA, boost clock; fp32 CUDA cores, dense TF32 and BF16 tensor cores, DRAM) for
    /// devices whose properties are unavailable: H100 SXM 66.9 / 494.7 / 989.4 TFLOP/s and 3350 GB/s, H100 PCIe
    /// 51.2 / 378 / 756 and 2000, H200 66.9 / 494.7 / 989.4 and 4800, A100 80 GB 19.5 / 156 / 312 and 2039, A100
    /// 40 GB 19.5 / 156 / 312 and 1555. Null for other devices.</summary>
    public static GpuPeak? PeakFromTable(string name)
    {
        string n = name.ToUpperInvariant();
        (double Tflops, double Tf32, double Bf16, double Gbps)? row =
            n.Contains("H100") && n.Contains("PCIE") ? (51.2, 378, 756, 2000) :
            n.Contains("H100") ? (66.9, 494.7, 989.4, 3350) :
            n.Contains("H200") ? (66.9, 494.7, 989.4, 4800) :
            n.Contains("A100") && n.Contains("80G") ? (19.5, 156, 312, 2039) :
            n.Contains("A100") ? (19.5, 156, 312, 1555) :
            null;
        return row is { } r ? new GpuPeak($"{name}: datasheet table", r.Tflops * 1e3, r.Gbps, 0, r.Tf32 * 1e3, r.Bf16 * 1e3) : null;
    }

    /// <summary>The ceilings of CUDA device <paramref name="deviceIndex"/>: from its properties, else from the
    /// datasheet table; throws when neither knows the device.</summary>
    public static GpuPeak CudaPeak(int deviceIndex = 0)
    {
        using var context = Context.Create(builder => builder.Cuda());
        var devices = context.GetCudaDevices();
        if (devices.Count <= deviceIndex) throw new InvalidOperationException("no CUDA device found (is the NVIDIA driver installed?)");
        var d = devices[deviceIndex];
        var arch = d.Architecture;
        var fromProperties = PeakFromProperties(d.Name, d.NumMultiprocessors, d.ClockRate, d.MemoryClockRate, d.MemoryBusWidth,
            arch?.Major ?? 0, arch?.Minor ?? 0);
        if (fromProperties is not null) return fromProperties;
        var fromTable = PeakFromTable(d.Name)
            ?? throw new NotSupportedException($"no fp32/bandwidth ceilings known for CUDA device '{d.Name}'");
        return fromTable with { ComputeUnits = d.NumMultiprocessors };
    }

    // ---------------- cases ----------------

}
