using System.CommandLine;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Gpu;
using SafeRlhf.Cli.Selftest;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf selftest --device cuda`: the first command to run on a machine with a GPU. Checks every backend
/// op (outputs and gradients) on the device against the native CPU backend at tiny and LLaMA-7B shapes, a LLaMA
/// loss with all its gradients, one training step and two rollouts, attention over a BF16 KV cache (and, with
/// `--matmul-inputs bf16`, dense matmuls with BF16 inputs on cuBLAS) under bounds derived from BF16's rounding, the host
/// waits per decode token, then runs the kernel benchmarks with "% of peak" against the right ceiling; prints a pass/fail table. Exit code 0 when every
/// check passed, <see cref="ChecksFailed"/> when one failed, 1 (with a one-line error) when the device is missing.
/// `--device ilgpu-cpu` runs the same checks on ILGPU's CPU accelerator at tiny shapes (for CI).</summary>
public static class SelftestCommand
{
    /// <summary>Exit code when the selftest ran and at least one check failed.</summary>
    public const int ChecksFailed = 2;

    public static readonly string[] Devices = ["cuda", "ilgpu-cpu"];
    public static readonly string[] ShapeSets = ["tiny", "llama-7b", "all"];

    public static Command Create()
    {
        var deviceOption = new Option<string>("--device")
        {
            Description = $"Device to validate ({string.Join(", ", Devices)}); cuda fails when no CUDA device is usable",
            DefaultValueFactory = _ => "cuda",
        };
        var shapesOption = new Option<string?>("--shapes")
        {
            Description = $"Check shapes ({string.Join(", ", ShapeSets)}; default: all on cuda, tiny on ilgpu-cpu)",
        };
        var gemmOption = new Option<string>("--gemm")
        {
            Description = "Dense GEMM engine on cuda: ilgpu (the hand-written kernel) or cublas (TF32 tensor cores; fails when libcublas is missing)",
            DefaultValueFactory = _ => "ilgpu",
        };
        var matmulOption = new Option<string>("--matmul-inputs")
        {
            Description = "bf16: also check dense matmuls with BF16 inputs (cuBLAS BF16 tensor cores, a second backend; --device cuda only) " +
                          "under the bound of BF16 operand rounding; f32 (default): the fp32 checks only",
            DefaultValueFactory = _ => "f32",
        };
        var noBenchOption = new Option<bool>("--no-bench") { Description = "Skip the benchmarks after the checks" };
        var quickOption = new Option<bool>("--quick") { Description = "Shorter benchmark shapes and timing" };
        var threadsOption = CommonOptions.Threads();
        var command = new Command("selftest", "Validate a GPU device against the native CPU backend, then benchmark it")
        {
            deviceOption, shapesOption, gemmOption, matmulOption, noBenchOption, quickOption, threadsOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () => Execute(parse.GetValue(deviceOption)!, parse.GetValue(shapesOption),
            !parse.GetValue(noBenchOption), parse.GetValue(quickOption), parse.GetValue(threadsOption), Console.Out,
            parse.GetValue(gemmOption)!, parse.GetValue(matmulOption)!)));
        return command;
    }

    public static int Execute(string device, string? shapes, bool bench, bool quick, int threads, TextWriter output, string gemm = "ilgpu",
        string matmulInputs = "f32")
    {
        var engine = gemm switch
        {
            "ilgpu" => GemmEngine.Ilgpu,
            "cublas" when device == "cuda" => GemmEngine.CuBlas,
            "cublas" => throw new CliException($"--gemm cublas: cuBLAS runs only on --device cuda, not '{device}'"),
            _ => throw new CliException($"--gemm: unknown engine '{gemm}' (valid: ilgpu, cublas)"),
        };
        if (!Devices.Contains(device))
            throw new CliException($"--device: selftest validates {string.Join(", ", Devices)}, not '{device}'");
        bool bf16MatMul = DeviceFactory.ParseMatMulInputs(matmulInputs, device) == MatMulInputs.BF16;
        shapes ??= device == "cuda" ? "all" : "tiny";
        if (!ShapeSets.Contains(shapes))
            throw new CliException($"--shapes: unknown shape set '{shapes}' (valid: {string.Join(", ", ShapeSets)})");
        if (device == "cuda") RequireCuda(GpuBackend.IsCudaAvailable);
        NativeBackend.Threads = DeviceFactory.ResolveThreads(threads);
        GpuBackend backend;
        try { backend = device == "cuda" ? GpuBackend.CreateCuda(gemm: engine) : GpuBackend.CreateCpu(); }
        catch (Backends.Gpu.CuBlas.CuBlasUnavailableException e) { throw new CliException($"--gemm cublas: {e.Message}"); }
        using var _ = backend;
        backend.DeferErrorChecks = true;
        var gpu = new Device(backend);
        var cpu = new Device(new NativeBackend());
        output.WriteLine($"# selftest on {backend.AcceleratorInfo} (GEMM: {backend.Gemm}) against the native CPU backend; shapes: {shapes}");
        var report = new SelftestReport(output);
        var ops = new OpConformance(gpu, cpu, report);
        var models = new ModelChecks(gpu, cpu, report);
        var bf16 = new Bf16Checks(cpu, report);
        using var bf16Backend = bf16MatMul ? CreateBf16Backend() : null;
        var bf16Device = bf16Backend is null ? null : new Device(bf16Backend);
        foreach (var s in new[] { OpConformance.Shapes.Tiny, OpConformance.Shapes.Llama7B })
        {
            if (shapes != "all" && shapes != s.Name) continue;
            ops.RunAll(s);
            models.RunAll(s == OpConformance.Shapes.Tiny ? ModelChecks.Tiny : ModelChecks.Llama7BLayer, s == OpConformance.Shapes.Tiny ? "tiny" : "llama-7b layer");
            bf16.DecodeAttention(gpu, $"{s.Name} 1x1x{s.Heads}x{s.HeadDim} S={4 * s.Seq + 1}", s.Heads, s.KvHeads, s.HeadDim, 4 * s.Seq + 1);
            if (bf16Device is not null) bf16.MatMul(bf16Device, $"{s.Name} {s.Rows}x{s.Hidden}x{s.Dim}", s.Rows, s.Dim, s.Hidden);
        }
        DecodeSyncs.Check(gpu, report);
        if (bench) Benchmark(backend, device, quick, output, report);
        report.WriteSummary(backend.AcceleratorInfo);
        return report.AllPassed ? 0 : ChecksFailed;
    }

    /// <summary>A second CUDA backend whose dense products read BF16 operands (cuBLAS), for the BF16 matmul rows.</summary>
    private static GpuBackend CreateBf16Backend()
    {
        try { return GpuBackend.CreateCuda(gemm: GemmEngine.CuBlas, inputs: MatMulInputs.BF16); }
        catch (Backends.Gpu.CuBlas.CuBlasUnavailableException e) { throw new CliException($"--matmul-inputs bf16: {e.Message}"); }
    }

    /// <summary>Throws the selftest's error when no CUDA device is usable.</summary>
    public static void RequireCuda(bool available)
    {
        if (!available)
            throw new CliException("selftest --device cuda: no CUDA device is usable on this machine (no NVIDIA driver, no GPU, " +
                                   "or libcuda failed to load); nothing was checked");
    }

    private static void Benchmark(GpuBackend backend, string device, bool quick, TextWriter output, SelftestReport report)
    {
        report.Run("benchmarks", quick ? "quick" : "full", () =>
        {
            GpuPeak peak;
            if (device == "cuda") peak = GpuKernelBench.CudaPeak();
            else
            {
                NativeProbe.Threads = 0;
                double seconds = quick ? 0.1 : 0.3;
                peak = new GpuPeak("host CPU, native probe", NativeProbe.FmaPeakGflops(0, seconds), NativeProbe.StreamGBps(256L << 20, 0, seconds));
            }
            output.WriteLine($"# benchmarks, ceilings {peak}");
            var results = GpuKernelBench.Run(backend, null, json: false, output, peak, device == "cuda" ? peak.ComputeUnits : Environment.ProcessorCount, quick);
            int bad = results.Count(r => !(double.IsFinite(r.PercentOfPeak) && r.PercentOfPeak >= 0));
            return new SelftestRow("benchmarks", quick ? "quick" : "full", bad == 0, bad, 0, $"{results.Count} lines, % of the ceiling each kernel should reach");
        });
    }
}
