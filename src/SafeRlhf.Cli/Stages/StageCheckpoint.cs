using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Cli.Stages;

/// <summary>What trainer_state.json holds: the stage, the steps done of the total, the optimiser step, the random
/// generator's state and the loss of every completed step. Runs with several optimisers (the RL stages) also record
/// each optimiser's step by name, and PPO-Lagrangian the multiplier's state.</summary>
public sealed record TrainerStateFile(string Format, int Version, string Stage, int Step, int TotalSteps, int OptimizerStep,
    ulong[] RngState, double[] Losses, Dictionary<string, int>? OptimizerSteps = null, LagrangeState? Lagrange = null);

/// <summary>The PPO-Lagrangian multiplier as saved: ln λ and the window of recent episode costs, oldest first.</summary>
public sealed record LagrangeState(double LogLambda, double[] Window);

/// <summary>One weights file of a checkpoint and how to write it.</summary>
public sealed record CheckpointModel(string File, Action<string> Save);

/// <summary>An optimiser of a checkpoint: its moments are stored as <c>m.&lt;name&gt;.&lt;parameter&gt;</c> (or
/// <c>m.&lt;parameter&gt;</c> for the unnamed single optimiser of a stage run).</summary>
public sealed record CheckpointOptimizer(string Name, AdamW Optimizer)
{
    public string Prefix => Name.Length == 0 ? "" : Name + ".";
}

/// <summary>A checkpoint read back: its folder, saved state and optimiser moments.</summary>
public sealed record LoadedCheckpoint(string Folder, TrainerStateFile State, IReadOnlyDictionary<string, (double[] M, double[] V)> Moments)
{
    public string ModelPath => Path.Combine(Folder, StageCheckpoint.ModelFile);

    /// <summary>The path of one weights file of the checkpoint; a missing file throws <see cref="CliException"/>.</summary>
    public string File(string name)
    {
        string path = Path.Combine(Folder, name);
        return System.IO.File.Exists(path) ? path : throw new CliException($"corrupt checkpoint: {path} is missing");
    }

    /// <summary>Restores <paramref name="optimizer"/> from the moments saved under its name and its recorded step.</summary>
    public void RestoreOptimizer(CheckpointOptimizer optimizer)
    {
        int step = optimizer.Name.Length == 0 ? State.OptimizerStep
            : State.OptimizerSteps is { } steps && steps.TryGetValue(optimizer.Name, out int s) ? s
            : throw new CliException($"corrupt checkpoint: {Folder}: trainer state records no step for optimizer '{optimizer.Name}'");
        var mine = new Dictionary<string, (double[] M, double[] V)>(StringComparer.Ordinal);
        foreach (var (name, mv) in Moments)
            if (name.StartsWith(optimizer.Prefix, StringComparison.Ordinal)) mine[name[optimizer.Prefix.Length..]] = mv;
        try { optimizer.Optimizer.Restore(step, mine); }
        catch (Exception e) when (e is KeyNotFoundException or InvalidDataException)
        {
            throw new CliException($"corrupt checkpoint: {Path.Combine(Folder, StageCheckpoint.OptimizerFile)}: {e.Message}");
        }
    }
}

/// <summary>Checkpoints of a stage run: <c>checkpoint-N/</c> folders (model.safetensors, optimizer.safetensors,
/// trainer_state.json) and a <c>latest</c> file naming the newest complete one. A checkpoint is written to
/// <c>checkpoint-N.tmp</c> and renamed when complete; <c>latest</c> is replaced atomically, and only then are older
/// checkpoints removed, so an interrupted save leaves the previous checkpoint in place.</summary>
public static partial class StageCheckpoint
{
    public const string ModelFile = "model.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string StateFile = "trainer_state.json";
    public const string LatestFile = "latest";
    private const string FormatName = "saferlhf-trainer-state";
    private const int FormatVersion = 2;
    private const int OldestReadableVersion = 1;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    [GeneratedRegex(@"^checkpoint-\d+$")]
    private static partial Regex CheckpointName();

    /// <summary>True when the run folder already holds a checkpoint pointer.</summary>
    public static bool Exists(string runPath) => File.Exists(Path.Combine(runPath, LatestFile));

    /// <summary>Writes checkpoint-<paramref name="step"/> (model via <paramref name="saveModel"/>), points
    /// <c>latest</c> at it and removes older checkpoints. Returns its folder.</summary>
    public static string Save(string runPath, string stage, int step, int totalSteps, Action<string> saveModel, AdamW optimizer,
        Rng rng, IReadOnlyList<double> losses) =>
        Save(runPath, stage, step, totalSteps, [new CheckpointModel(ModelFile, saveModel)], [new CheckpointOptimizer("", optimizer)], rng, losses);

    /// <summary>Writes checkpoint-<paramref name="step"/> with every weights file of <paramref name="models"/>, the moments
    /// of every optimiser and the trainer state, points <c>latest</c> at it and removes older checkpoints. Returns its folder.</summary>
    public static string Save(string runPath, string stage, int step, int totalSteps, IReadOnlyList<CheckpointModel> models,
        IReadOnlyList<CheckpointOptimizer> optimizers, Rng rng, IReadOnlyList<double> losses, LagrangeState? lagrange = null)
    {
        string name = $"checkpoint-{step}";
        string final = Path.Combine(runPath, name);
        string temp = final + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);

        foreach (var model in models) model.Save(Path.Combine(temp, model.File));
        var moments = new List<RawTensor>();
        using (TensorScope.Suspend())
        using (GradMode.NoGrad())
        {
            foreach (var o in optimizers)
                foreach (var (param, m, v) in o.Optimizer.Moments())
                {
                    var dims = m.Shape.ToArray();
                    moments.Add(new RawTensor("m." + o.Prefix + param, DType.F64, dims, MemoryMarshal.AsBytes(m.ToDoubleArray().AsSpan()).ToArray()));
                    moments.Add(new RawTensor("v." + o.Prefix + param, DType.F64, dims, MemoryMarshal.AsBytes(v.ToDoubleArray().AsSpan()).ToArray()));
                }
        }
        Safetensors.Write(Path.Combine(temp, OptimizerFile), moments, new Dictionary<string, string> { ["format"] = "saferlhf-adamw-moments" });
        var single = optimizers.Count == 1 && optimizers[0].Name.Length == 0;
        var state = new TrainerStateFile(FormatName, FormatVersion, stage, step, totalSteps, single ? optimizers[0].Optimizer.Step : 0,
            rng.State, losses.ToArray(),
            single ? null : optimizers.ToDictionary(o => o.Name, o => o.Optimizer.Step), lagrange);
        File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, Json));

        // Re-saving the same step (e.g. after a resume) replaces the old folder only once the new one is complete.
        string? old = null;
        if (Directory.Exists(final))
        {
            old = final + ".old";
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
            Directory.Move(final, old);
        }
        Directory.Move(temp, final);
        string latest = Path.Combine(runPath, LatestFile);
        File.WriteAllText(latest + ".tmp", name + "\n");
        File.Move(latest + ".tmp", latest, overwrite: true);
        if (old is not null) Directory.Delete(old, recursive: true);
        foreach (var dir in Directory.GetDirectories(runPath, "checkpoint-*"))
        {
            string n = Path.GetFileName(dir);
            if (n != name && (CheckpointName().IsMatch(n) || n.EndsWith(".tmp", StringComparison.Ordinal)))
                Directory.Delete(dir, recursive: true);
        }
        return final;
    }

    /// <summary>Reads the checkpoint named by <c>latest</c>; any missing or malformed part throws
    /// <see cref="CliException"/> naming it.</summary>
    public static LoadedCheckpoint ReadLatest(string runPath, string stage)
    {
        string latest = Path.Combine(runPath, LatestFile);
        if (!File.Exists(latest)) throw new CliException($"--resume: {runPath} holds no checkpoint (no '{LatestFile}' file)");
        string name = File.ReadAllText(latest).Trim();
        if (!CheckpointName().IsMatch(name)) throw new CliException($"corrupt checkpoint: {latest} does not name a checkpoint folder ('{name}')");
        string folder = Path.Combine(runPath, name);
        if (!Directory.Exists(folder)) throw new CliException($"corrupt checkpoint: {folder} named by {latest} does not exist");

        string statePath = Path.Combine(folder, StateFile);
        if (!File.Exists(statePath)) throw new CliException($"corrupt checkpoint: {statePath} is missing");
        TrainerStateFile? state;
        try { state = JsonSerializer.Deserialize<TrainerStateFile>(ConfigLoader.ReadUtf8(statePath), Json); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or DecoderFallbackException)
        {
            throw new CliException($"corrupt checkpoint: {statePath} is not valid trainer state ({e.Message})");
        }
        if (state is null || state.Format != FormatName || state.RngState is null || state.Losses is null)
            throw new CliException($"corrupt checkpoint: {statePath} is not a {FormatName} file");
        if (state.Version < OldestReadableVersion || state.Version > FormatVersion)
            throw new CliException($"checkpoint {statePath}: format version {state.Version} is not supported " +
                                   $"(this build reads versions {OldestReadableVersion} to {FormatVersion})");
        if (state.Stage != stage) throw new CliException($"--resume: {folder} is a '{state.Stage}' checkpoint, not '{stage}'");
        if (state.Step < 0 || state.Step > state.TotalSteps || state.Losses.Length != state.Step || state.RngState.Length != 4)
            throw new CliException($"corrupt checkpoint: {statePath} is inconsistent (step {state.Step} of {state.TotalSteps}, " +
                                   $"{state.Losses.Length} losses, {state.RngState.Length} RNG words)");
        if (!File.Exists(Path.Combine(folder, ModelFile))) throw new CliException($"corrupt checkpoint: {Path.Combine(folder, ModelFile)} is missing");
        return new LoadedCheckpoint(folder, state, ReadMoments(Path.Combine(folder, OptimizerFile)));
    }

    private static Dictionary<string, (double[] M, double[] V)> ReadMoments(string path)
    {
        if (!File.Exists(path)) throw new CliException($"corrupt checkpoint: {path} is missing");
        try
        {
            using var file = Safetensors.Read(path);
            var result = new Dictionary<string, (double[] M, double[] V)>(StringComparer.Ordinal);
            foreach (var raw in file.Tensors.Where(t => t.Name.StartsWith("m.", StringComparison.Ordinal)))
            {
                string param = raw.Name[2..];
                if (!file.TryGetTensor("v." + param, out var v))
                    throw new CliException($"corrupt checkpoint: {path} has no second moment for '{param}'");
                result[param] = (Doubles(path, raw), Doubles(path, v));
            }
            return result;
        }
        catch (WeightFormatException e)
        {
            throw new CliException($"corrupt checkpoint: {e.Message}");
        }
    }

    private static double[] Doubles(string path, RawTensor raw) => raw.DType == DType.F64
        ? MemoryMarshal.Cast<byte, double>(raw.Data.Span).ToArray()
        : throw new CliException($"corrupt checkpoint: {path}: tensor '{raw.Name}' is {raw.DType}, expected F64");

    /// <summary>Writes every parameter of <paramref name="module"/> as stored (for models without a LLaMA checkpoint
    /// form); quantized (frozen) weights are written dequantized to F32.</summary>
    public static void SaveModule(Module module, string path, IReadOnlyDictionary<string, string> metadata)
        => Safetensors.WriteTensors(path, module.NamedParameters(), metadata);

    /// <summary>Overwrites every parameter of <paramref name="module"/> with the same-named tensor of a safetensors
    /// file; a missing tensor or a different dtype or shape throws <see cref="CliException"/>. Frozen base weights kept
    /// in a storage type (F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K: the base under LoRA, which training never changes) are checked for
    /// presence and shape only (files of earlier versions hold quantized ones dequantized).</summary>
    public static void LoadInto(Module module, string path)
    {
        try
        {
            using var file = Safetensors.Read(path);
            using var suspend = TensorScope.Suspend();
            using var noGrad = GradMode.NoGrad();
            foreach (var (name, t) in module.NamedParameters())
            {
                if (!file.TryGetTensor(name, out var raw)) throw new CliException($"corrupt checkpoint: {path} has no tensor '{name}'");
                var dims = t.Shape.ToArray();
                if (!t.RequiresGrad && LlamaLoadOptions.StorageTypes.Contains(t.DType))
                {
                    if (!raw.Dims.SequenceEqual(dims))
                        throw new CliException($"corrupt checkpoint: {path}: '{name}' is [{string.Join(", ", raw.Dims)}], " +
                                               $"the model needs [{string.Join(", ", dims)}]");
                    continue;
                }
                if (raw.DType != t.DType || !raw.Dims.SequenceEqual(dims))
                    throw new CliException($"corrupt checkpoint: {path}: '{name}' is {raw.DType} [{string.Join(", ", raw.Dims)}], " +
                                           $"the model needs {t.DType} [{string.Join(", ", dims)}]");
                using var src = Tensor.FromBytes(t.Device, raw.DType, raw.Data.Span, dims);
                t.Backend.Copy(src, t);
            }
        }
        catch (WeightFormatException e)
        {
            throw new CliException($"corrupt checkpoint: {e.Message}");
        }
    }

    /// <summary>Keeps the metrics lines of the steps a checkpoint covers (drops those written after it).</summary>
    public static void TruncateMetrics(string metricsPath, int step)
    {
        if (!File.Exists(metricsPath)) return;
        var kept = new List<string>();
        foreach (var line in File.ReadAllLines(metricsPath))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("step", out var s) && s.TryGetInt32(out int n) && n <= step) kept.Add(line);
            }
            catch (JsonException)
            {
                // A line cut short by the interruption: dropped.
            }
        }
        File.WriteAllText(metricsPath + ".tmp", kept.Count == 0 ? "" : string.Join("\n", kept) + "\n");
        File.Move(metricsPath + ".tmp", metricsPath, overwrite: true);
    }
}
