using System.CommandLine;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Gpu;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf bench`: kernel throughput at LLaMA-7B shapes as time, GFLOP/s, GB/s and % of the device's
/// peak. cpu runs the native kernels after probing the FMA and stream ceilings; ilgpu-cpu and cuda run the ILGPU
/// kernels (tiny smoke shapes on the CPU accelerator).</summary>
public static class BenchCommand
{
    /// <summary>Devices the benchmark knows.</summary>
    public static readonly string[] Devices = ["cpu", "ilgpu-cpu", "cuda"];

    public static Command Create()
    {
        var kernelOption = new Option<string?>("--kernel")
        {
            Description = $"Only the kernels whose name contains this ({string.Join(", ", KernelBench.Kernels)})",
        };
        var deviceOption = new Option<string>("--device")
        {
            Description = $"Device to benchmark ({string.Join(", ", Devices)})",
            DefaultValueFactory = _ => "cpu",
        };
        var threadsOption = CommonOptions.Threads();
        var jsonOption = new Option<bool>("--json") { Description = "One JSON object per line" };
        var quickOption = new Option<bool>("--quick") { Description = "Smaller shapes and shorter timing (a smoke run)" };
        var busyOption = new Option<bool>("--busy")
        {
            Description = "Time each kernel alone, then beside a competing busy process, and compare the slowdown with the CPU it took " +
                          "(cpu only; default kernels: the w1 GEMM and swiglu_fwd)",
        };
        var command = new Command("bench", "Benchmark the kernels: time, GFLOP/s, GB/s and % of the device's peak")
        {
            kernelOption, deviceOption, threadsOption, jsonOption, quickOption, busyOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () => Execute(
            parse.GetValue(kernelOption), parse.GetValue(deviceOption)!, parse.GetValue(threadsOption),
            parse.GetValue(jsonOption), parse.GetValue(quickOption), Console.Out, parse.GetValue(busyOption))));
        return command;
    }

    /// <summary>Runs the benchmark and writes its lines to <paramref name="output"/>; returns the exit code.</summary>
    public static int Execute(string? kernel, string device, int threads, bool json, bool quick, TextWriter output, bool busy = false)
    {
        if (!Devices.Contains(device))
            throw new CliException($"--device: bench runs on {string.Join(", ", Devices)}, not '{device}'");
        threads = DeviceFactory.ResolveThreads(threads);
        var names = device == "cpu" ? KernelBench.Kernels : GpuKernelBench.Kernels;
        if (kernel is not null && !names.Any(n => n.Contains(kernel, StringComparison.OrdinalIgnoreCase)))
            throw new CliException($"--kernel: unknown kernel '{kernel}' (valid: {string.Join(", ", names)})");

        if (busy)
        {
            if (device != "cpu") throw new CliException($"--busy: measures the native CPU kernels (--device cpu), not '{device}'");
            BusyBench.Run(kernel, threads, json, quick, output);
            return 0;
        }

        switch (device)
        {
            case "cpu":
                KernelBench.Run(kernel, threads, json, output, quick);
                return 0;
            case "ilgpu-cpu":
            {
                // the CPU accelerator runs on this machine's cores: its ceilings are the native probe's
                NativeProbe.Threads = 0;
                double seconds = quick ? 0.1 : 0.3;
                var peak = new GpuPeak("host CPU, native probe", NativeProbe.FmaPeakGflops(0, seconds), NativeProbe.StreamGBps(256L << 20, 0, seconds));
                using var backend = GpuBackend.CreateCpu();
                if (!json) output.WriteLine($"# {backend.AcceleratorInfo}; smoke shapes, ceilings {peak}");
                GpuKernelBench.Run(backend, kernel, json, output, peak, Environment.ProcessorCount, quick);
                return 0;
            }
            default:
            {
                if (!GpuBackend.IsCudaAvailable)
                    throw new CliException("--device cuda: no CUDA device is available on this machine (use --device cpu)");
                var peak = GpuKernelBench.CudaPeak();
                using var backend = GpuBackend.CreateCuda();
                if (!json) output.WriteLine($"# {backend.AcceleratorInfo}; ceilings {peak}");
                GpuKernelBench.Run(backend, kernel, json, output, peak, peak.ComputeUnits, quick);
                return 0;
            }
        }
    }
}
