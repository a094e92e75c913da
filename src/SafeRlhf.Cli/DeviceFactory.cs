using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Backends.Gpu;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli;

/// <summary>Creates the device named by `--device`. The only place in the program that names a backend.</summary>
public static class DeviceFactory
{
    /// <summary>cpu: native C++ kernels; reference: the plain C# oracle; ilgpu-cpu: the GPU kernels on ILGPU's CPU
    /// accelerator (correctness only, slow); cuda: the GPU kernels on an NVIDIA GPU.</summary>
    public static readonly string[] Names = ["cpu", "reference", "ilgpu-cpu", "cuda"];
    public const string DefaultName = "cpu";

    /// <summary>Creates the device; for cpu, <paramref name="threads"/> is the `--threads` value (0: automatic, see
    /// <see cref="ResolveThreads"/>); <paramref name="matmulInputs"/> is the `--matmul-inputs` value (bf16 only on cuda).</summary>
    public static Device Create(string name, int threads = 0, string matmulInputs = "f32")
    {
        var inputs = ParseMatMulInputs(matmulInputs, name);
        if (inputs == MatMulInputs.BF16) return CreateCudaBf16();
        switch (name)
        {
            case "cpu":
                NativeBackend.Threads = ResolveThreads(threads);
                return new Device(new NativeBackend());
            case "reference":
                return new Device(new ReferenceBackend());
            case "ilgpu-cpu":
                return new Device(GpuBackend.CreateCpu().WithDeferredErrorChecks());
            case "cuda":
                if (!GpuBackend.IsCudaAvailable)
                    throw new CliException("--device cuda: no CUDA device is available on this machine (use --device cpu)");
                return new Device(GpuBackend.CreateCuda().WithDeferredErrorChecks());
            default:
                throw new CliException($"--device: unknown device '{name}' (valid: {string.Join(", ", Names)})");
        }
    }

    /// <summary>The operand precision named by a `--matmul-inputs` value for device <paramref name="device"/>: f32 on every
    /// device; bf16 (cuBLAS BF16 GEMMs, <see cref="MatMulInputs.BF16"/>) only on cuda, refused with a
    /// <see cref="CliException"/> elsewhere rather than run in fp32.</summary>
    public static MatMulInputs ParseMatMulInputs(string? value, string device) => value switch
    {
        "f32" => MatMulInputs.F32,
        "bf16" when device == "cuda" => MatMulInputs.BF16,
        "bf16" => throw new CliException($"--matmul-inputs bf16: BF16 matmul inputs run on cuBLAS tensor cores with --device cuda only, not '{device}' " +
                                         "(leave out --matmul-inputs or use f32)"),
        _ => throw new CliException($"--matmul-inputs: unknown operand precision '{value}' (valid: f32, bf16)"),
    };

    /// <summary>cuda with cuBLAS GEMMs reading BF16 operands; a clear error when no GPU or no libcublas is there.</summary>
    private static Device CreateCudaBf16()
    {
        if (!GpuBackend.IsCudaAvailable)
            throw new CliException("--device cuda: no CUDA device is available on this machine (use --device cpu)");
        try { return new Device(GpuBackend.CreateCuda(gemm: GemmEngine.CuBlas, inputs: MatMulInputs.BF16).WithDeferredErrorChecks()); }
        catch (Backends.Gpu.CuBlas.CuBlasUnavailableException e) { throw new CliException($"--matmul-inputs bf16: {e.Message}"); }
    }

    /// <summary>The native thread count for a `--threads` value: the value itself when positive, otherwise
    /// SAFERLHF_THREADS, then OMP_NUM_THREADS, then the cores this process may use. Invalid values are reported
    /// as errors naming the option or variable.</summary>
    public static int ResolveThreads(int threads)
    {
        try
        {
            return ThreadCount.FromEnvironment(threads).Count;
        }
        catch (ArgumentException ex)
        {
            throw new CliException(ex.Message);
        }
    }

    private static string ThreadText()
    {
        try
        {
            var choice = ThreadCount.FromEnvironment();
            return $"{choice.Count} threads by default from {(choice.Source == "cores" ? "the cores" : "$" + choice.Source)}";
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>One line per device this build knows, with its availability.</summary>
    public static IEnumerable<string> Describe()
    {
        string cpu;
        try
        {
            var f = CpuFeatures.Detect();
            cpu = $"native C++ kernels ({f.KernelIsa}, {Environment.ProcessorCount} cores, {ThreadText()}) on {f.Brand}; features {f.Flags}";
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BackendException)
        {
            cpu = $"unavailable: {ex.Message}";
        }
        yield return $"cpu             {cpu}";
        yield return "reference       plain C# oracle (double accumulation), always available";
        yield return $"ilgpu-cpu       ILGPU {typeof(ILGPU.Context).Assembly.GetName().Version} kernels on the CPU accelerator (correctness checks)";
        yield return $"cuda            {(GpuBackend.IsCudaAvailable ? "available" : "no CUDA device found")}";
    }
}

/// <summary>A user-facing error: printed as one line without a stack trace, exit code 1.</summary>
public sealed class CliException(string message) : Exception(message);
