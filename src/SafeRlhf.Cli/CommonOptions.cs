using System.CommandLine;

namespace SafeRlhf.Cli;

/// <summary>Options shared by several commands, with one name each across the driver.</summary>
public static class CommonOptions
{
    public static Option<string> Device() => new("--device")
    {
        Description = $"Device to run on ({string.Join(", ", DeviceFactory.Names)})",
        DefaultValueFactory = _ => DeviceFactory.DefaultName,
    };

    /// <summary>Threads of the native CPU kernels (the cpu device); 0 leaves the choice to SAFERLHF_THREADS, then
    /// OMP_NUM_THREADS, then the cores this process may use.</summary>
    public static Option<int> Threads() => new("--threads")
    {
        Description = $"Native CPU threads for --device cpu (default 0: ${SafeRlhf.Backends.Cpu.Native.ThreadCount.Variable}, " +
                      $"else ${SafeRlhf.Backends.Cpu.Native.ThreadCount.OpenMpVariable}, else the cores this process may use)",
    };

    /// <summary>How generation stores its KV cache: f32 (default, as computed) or bf16 (rounded to BF16, see
    /// <see cref="Llama.KvCacheType"/>).</summary>
    public static Option<string> KvCache() => new("--kv-cache")
    {
        Description = "KV cache storage: f32 (default: keys and values as computed) or bf16 (rounded to BF16: half the cache memory, " +
                      "attention accumulates in fp32; devices cuda, ilgpu-cpu and reference)",
        DefaultValueFactory = _ => "f32",
    };

    /// <summary>The <see cref="Llama.KvCacheType"/> named by a `--kv-cache` value (or config key), or a <see cref="CliException"/>
    /// naming <paramref name="where"/>.</summary>
    public static Llama.KvCacheType ParseKvCache(string? value, string where = "--kv-cache")
    {
        try { return Llama.KvCacheTypes.Parse(value, where); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>How frozen Q8_0/Q4_0/Q4_K/Q5_K matrices are laid out in memory (see <see cref="InterleaveRows"/>).</summary>
    public static Option<string> WeightLayout() => new("--weight-layout")
    {
        Description = "Frozen Q8_0/Q4_0/K-quant matrices in memory: auto (default: interleaved where the device computes with it: cpu and reference; " +
                      "file elsewhere), file (rows as stored) or interleaved (rows in groups of 16, read by the CPU product " +
                      "without unpacking; same weights, products equal up to fp32 summation order)",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>Whether a `--weight-layout` value asks for row-interleaved weights on <paramref name="device"/>, or a
    /// <see cref="CliException"/> for an unknown value or a device that cannot compute with them.</summary>
    public static bool InterleaveRows(string? value, Tensors.Device device) => value switch
    {
        "auto" or null => Tensors.Ops.CanInterleaveRows(device),
        "file" => false,
        "interleaved" => Tensors.Ops.CanInterleaveRows(device)
            ? true
            : throw new CliException($"--weight-layout interleaved: device '{device.Name}' does not compute with row-interleaved weights (use the cpu device or --weight-layout file)"),
        _ => throw new CliException($"--weight-layout: expected auto, file or interleaved, got '{value}'"),
    };

    /// <summary>The operand precision of dense matmuls on the cuda device (see <see cref="DeviceFactory.ParseMatMulInputs"/>).</summary>
    public static Option<string> MatMulInputs() => new("--matmul-inputs")
    {
        Description = "Dense matmul operands: f32 (default) or bf16 (cuBLAS BF16 tensor cores with fp32 accumulation, fp32 master weights; " +
                      "--device cuda only)",
        DefaultValueFactory = _ => "f32",
    };

    public static Option<string?> Config() => new("--config") { Description = "JSON config file (keys as in the run's config.json)" };

    public static Option<string[]> Set() => new("--set")
    {
        Description = "Override one config value: --set rl.steps=50 (repeatable)",
        AllowMultipleArgumentsPerToken = false,
    };

    public static Option<string?> Resume() => new("--resume")
    {
        Description = "Continue the run in this folder from its latest checkpoint (its config.json unless --config is given)",
    };

    /// <summary>With --resume DIR: the run folder is DIR and the config defaults to DIR/config.json; a different --out is
    /// refused. Without it the config file is required. Returns the run folder (null = a new default one) and config file.</summary>
    public static (string? OutPath, string ConfigFile) ResolveResume(string? resume, string? outPath, string? configFile, string required)
    {
        if (resume is null)
            return (outPath, configFile ?? throw new CliException($"--config: required (a JSON file with at least {required})"));
        if (!Directory.Exists(resume)) throw new CliException($"--resume: run folder not found: {resume}");
        if (outPath is not null && Path.GetFullPath(outPath) != Path.GetFullPath(resume))
            throw new CliException("--resume continues in its own run folder: leave out --out");
        return (resume, configFile ?? Path.Combine(resume, "config.json"));
    }

    public static Option<bool> Quiet() => new("--quiet") { Description = "No progress display; print only the result path" };

    public static Option<bool> Verbose() => new("--verbose") { Description = "Show the effective config at the start of a pipeline (it is saved as config.json in the run folder) and stack traces on errors", Recursive = true };
}
