using System.Diagnostics;
using System.Globalization;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Cli.Commands;

/// <summary>One kernel timed alone and beside a competing busy process. Per phase: mean wall time per call, this
/// process's CPU time per call and the CPU it received (in cores: CPU time over wall time). Since time per call is CPU
/// per call over CPU received, the slowdown splits exactly into the CPU the process lost to others
/// (<see cref="ProportionalSlowdown"/>) times the extra CPU each call burned (<see cref="CpuPerCallRatio"/>, 1 when
/// no cycles go to waiting).</summary>
public sealed record BusyBenchResult(string Kernel, string Shape, int Threads, int Cores, double AloneSeconds, double BusySeconds,
    double AloneCpuSeconds, double BusyCpuSeconds, double AloneCores, double BusyCores, double StolenFraction)
{
    /// <summary>Busy time over alone time.</summary>
    public double Slowdown => BusySeconds / AloneSeconds;

    /// <summary>The slowdown from the CPU lost alone: CPU received alone over CPU received beside the competitor.</summary>
    public double ProportionalSlowdown => AloneCores / BusyCores;

    /// <summary>CPU per call beside the competitor over CPU per call alone (above 1: cycles spent waiting).</summary>
    public double CpuPerCallRatio => BusyCpuSeconds / AloneCpuSeconds;

    public string ToJson() => string.Create(CultureInfo.InvariantCulture,
        $"{{\"kernel\":\"{Kernel}\",\"shape\":\"{Shape}\",\"threads\":{Threads},\"cores\":{Cores},\"alone_seconds\":{AloneSeconds:G6}," +
        $"\"busy_seconds\":{BusySeconds:G6},\"slowdown\":{Slowdown:G4},\"proportional_slowdown\":{ProportionalSlowdown:G4}," +
        $"\"cpu_per_call_ratio\":{CpuPerCallRatio:G4},\"alone_cpu_seconds\":{AloneCpuSeconds:G6},\"busy_cpu_seconds\":{BusyCpuSeconds:G6}," +
        $"\"alone_cores\":{AloneCores:G4},\"busy_cores\":{BusyCores:G4},\"stolen_fraction\":{StolenFraction:G4}}}");

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Kernel,-11} {Shape,-24} {AloneSeconds * 1e3,8:F2} → {BusySeconds * 1e3,8:F2} ms  ×{Slowdown,5:F2} = " +
        $"×{ProportionalSlowdown,4:F2} CPU lost ({AloneCores:F2} → {BusyCores:F2} cores) · ×{CpuPerCallRatio,4:F2} CPU/call " +
        $"({AloneCpuSeconds * 1e3:F2} → {BusyCpuSeconds * 1e3:F2} ms); competitor {100 * StolenFraction:F0} % of the machine");
}

/// <summary>`saferlhf bench --busy`: how the native kernels degrade on a shared machine. Each kernel runs at the chosen
/// thread count first alone, then while a spawned shell loop burns one core; the slowdown is printed next to the
/// slowdown that losing exactly the competitor's share of the CPU would cause.</summary>
public static class BusyBench
{
    /// <summary>The kernels timed without --kernel: a compute-bound GEMM and a memory-bound elementwise kernel.</summary>
    private static bool IsDefaultCase(KernelCase c) => (c.Kernel == "matmul_f32" && c.Shape.Contains("w1", StringComparison.Ordinal)) ||
                                                       c.Kernel == "swiglu_fwd";

    public static IReadOnlyList<BusyBenchResult> Run(string? kernel, int threads, bool json, bool quick, TextWriter output)
    {
        if (OperatingSystem.IsWindows()) throw new CliException("--busy: the competing process is a /bin/sh loop; not available on Windows");
        NativeBackend.Threads = threads;
        int used = NativeBackend.Threads, cores = Environment.ProcessorCount;
        double budget = quick ? 0.4 : 2.0;
        var results = new List<BusyBenchResult>();
        if (!json)
            output.WriteLine($"# {used} native threads on {cores} cores; each kernel alone, then beside a busy process " +
                             $"(/bin/sh loop), {budget:F1} s each; mean time per call; load average {LoadAverage()}");
        try
        {
            var device = new Device(new NativeBackend());
            var shapes = quick ? KernelShapes.Llama7BQuick : KernelShapes.Llama7B;
            foreach (var c in KernelCases.For(device, shapes))
            {
                if (kernel is null ? !IsDefaultCase(c) : !c.Kernel.Contains(kernel, StringComparison.OrdinalIgnoreCase)) continue;
                using var scope = new TensorScope();
                var run = c.Setup();
                run();  // warm-up
                var alone = Measure(run, budget, competitor: null);
                Sample busy;
                using (var competitor = Competitor.Start())
                    busy = Measure(run, budget, competitor);
                var r = new BusyBenchResult(c.Kernel, c.Shape, used, cores, alone.Mean, busy.Mean, alone.CpuPerCall, busy.CpuPerCall,
                    alone.Cpu / alone.Wall, busy.Cpu / busy.Wall, busy.CompetitorCpu / (busy.Wall * cores));
                results.Add(r);
                output.WriteLine(json ? r.ToJson() : r.ToString());
            }
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
        return results;
    }

    /// <summary>The 1-minute load average when the system reports one (Linux), else "unknown".</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    /// <summary>Calls, wall seconds and this process's CPU seconds of one timing window, and the competitor's CPU
    /// seconds over it.</summary>
    private readonly record struct Sample(int Calls, double Wall, double Cpu, double CompetitorCpu)
    {
        public double Mean => Wall / Calls;
        public double CpuPerCall => Cpu / Calls;
    }

    private static Sample Measure(Action run, double budget, Competitor? competitor)
    {
        var self = Process.GetCurrentProcess();
        int calls = 0;
        double competitorStart = competitor?.CpuSeconds() ?? 0;
        double cpuStart = self.TotalProcessorTime.TotalSeconds;
        long start = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(start).TotalSeconds < budget || calls < 3)
        {
            run();
            calls++;
        }
        double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        self.Refresh();
        double cpu = self.TotalProcessorTime.TotalSeconds - cpuStart;
        double competitorCpu = (competitor?.CpuSeconds() ?? 0) - competitorStart;
        return new(calls, wall, cpu, competitorCpu);
    }

    /// <summary>A child process that spins on one core until disposed.</summary>
    private sealed class Competitor : IDisposable
    {
        private readonly Process _process;

        private Competitor(Process process) => _process = process;

        public static Competitor Start()
        {
            var process = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "while :; do :; done"]) { UseShellExecute = false })
                          ?? throw new CliException("--busy: could not start the competing /bin/sh process");
            var competitor = new Competitor(process);
            // let it reach its loop (and the scheduler notice it) before timing
            var warm = Stopwatch.StartNew();
            while (competitor.CpuSeconds() < 0.05 && warm.Elapsed.TotalSeconds < 2) Thread.Sleep(10);
            return competitor;
        }

        public double CpuSeconds()
        {
            _process.Refresh();
            return _process.HasExited ? 0 : _process.TotalProcessorTime.TotalSeconds;
        }

        public void Dispose()
        {
            try
            {
                if (!_process.HasExited) _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
            _process.Dispose();
        }
    }
}
