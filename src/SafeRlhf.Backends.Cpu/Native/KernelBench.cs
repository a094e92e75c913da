using System.Diagnostics;
using System.Globalization;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>Benchmarks the native kernels at LLaMA-7B shapes (dim 4096, hidden 11008, 32 heads × 128,
/// vocab 32000, sequence 512 / 2048) through <see cref="IBackend"/>, after probing the FMA, DRAM and cache
/// ceilings; each row names the ceiling its percentage is of (<see cref="BenchCeilings"/>). Used by the benchmarks project and the CLI's <c>bench</c> command.</summary>
public static class KernelBench
{

    /// <summary>Names accepted by <see cref="Run"/>'s kernel filter.</summary>
    public static IReadOnlyList<string> Kernels { get; } = [.. KernelCases.Kernels, "quantized_matmul_bf16_dot"];

    /// <summary>Runs the probes, then every kernel whose name contains <paramref name="kernel"/> (all when null),
    /// on <paramref name="threads"/> native threads (0: all cores); writes one line per result (JSON objects
    /// when <paramref name="json"/>) and returns the results. <paramref name="quick"/> uses the smoke shapes and short
    /// timing (seconds in all).</summary>
    public static IReadOnlyList<KernelBenchResult> Run(string? kernel, int threads, bool json, TextWriter output, bool quick = false)
    {
        NativeBackend.Threads = threads;
        int used = NativeBackend.Threads;
        var results = new List<KernelBenchResult>();
        try
        {
            var ceilings = BenchCeilings.Probe(used, quick ? 0.05 : 0.5);
            void Emit(KernelBenchResult r)
            {
                results.Add(r);
                output.WriteLine(json ? r.ToJson() : r.ToString());
            }
            Emit(new("peak_fma_f32", "24 chains", "cpu", used, 0, ceilings.FmaGflops, 0, 100, "fma"));
            Emit(new("peak_stream", "256MiB copy", "cpu", used, 0, 0, ceilings.DramGBps, 100, "dram"));
            Emit(new("peak_stream_cache", $"{ceilings.CacheBytes / 2 >> 10}KiB copy", "cpu", used, 0, 0, ceilings.CacheGBps, 100, "cache"));
            var device = new Device(new NativeBackend());
            // --quick: the smoke shapes (every case cache-resident, measured against the cache ceiling), in seconds.
            var shapes = quick ? KernelShapes.Smoke : KernelShapes.Llama7B;
            foreach (var c in KernelCases.For(device, shapes).Concat(NativeOnlyCases(device, shapes)))
            {
                if (kernel is not null && !c.Kernel.Contains(kernel, StringComparison.OrdinalIgnoreCase)) continue;
                using var scope = new TensorScope();
                var run = c.Setup();
                double seconds = Time(run, quick ? 0.02 : 1.0);
                double gflops = c.Flops / seconds / 1e9, gbps = c.Bytes / seconds / 1e9;
                var (ceiling, rate) = ceilings.For(c);
                Emit(new(c.Kernel, c.Shape, "cpu", used, seconds, gflops, gbps, 100 * (c.ComputeBound ? gflops : gbps) / rate, ceiling));
            }
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
        return results;
    }

    /// <summary>Kernels of the native library outside IBackend: the vdpbf16ps BF16 matmul (x rounded to bf16), on CPUs
    /// with AVX512_BF16.</summary>
    private static IEnumerable<KernelCase> NativeOnlyCases(Device d, KernelShapes s)
    {
        if (!CpuFeatures.Detect().Flags.HasFlag(CpuFeatureFlags.Avx512Bf16)) yield break;
        var rng = new Rng(2);
        int dim = s.Dim, hidden = s.Hidden;
        foreach (int n in new[] { 1, s.Seq })
            yield return new("quantized_matmul_bf16_dot", $"{n}x{hidden}x{dim}", 2.0 * n * hidden * dim, 2.0 * hidden * dim + 4.0 * n * (dim + hidden), n > 1, () =>
            {
                var w = KernelCases.Bf16Weight(d, rng, hidden, dim);
                var x = rng.UniformTensor(d, DType.F32, -1, 1, n, dim); var y = Tensor.Zeros(d, DType.F32, n, hidden);
                return () => NativeBackend.QuantizedMatMulBf16Dot(x, w, y);
            });
    }

    /// <summary>Best time of repeated runs after one warm-up, stopping after about <paramref name="budget"/> seconds.</summary>
    private static double Time(Action run, double budget)
    {
        run();
        double best = double.MaxValue, spent = 0;
        int reps = 0;
        while ((spent < budget || reps < 3) && reps < 50)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            double dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Min(best, dt);
            spent += dt;
            reps++;
        }
        return best;
    }
}
