using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Checkpoints;

/// <summary>Checkpoints of a training run: <c>checkpoint-N/</c> folders (model.safetensors and any other weights files,
/// optimizer.safetensors, trainer_state.json, and the files that make the folder self-contained: the tokenizer and
/// model.json) and a <c>latest</c> file naming the newest complete one. A checkpoint is written to
/// <c>checkpoint-N.tmp</c> and renamed when complete; <c>latest</c> is replaced atomically, and only then are older
/// checkpoints removed, so an interrupted save leaves the previous checkpoint in place.</summary>
public static partial class RunCheckpoints
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

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    [GeneratedRegex(@"^checkpoint-\d+$")]
    private static partial Regex CheckpointName();

    /// <summary>True when the run folder already holds a checkpoint pointer.</summary>
    public static bool Exists(string runPath) => File.Exists(Path.Combine(runPath, LatestFile));

    /// <summary>Writes checkpoint-<paramref name="step"/> with every weights file of <paramref name="models"/>, the
    /// moments of every optimiser (role "" for the single optimiser of a supervised stage), the trainer state and
    /// <paramref name="extras"/> (files that make the folder self-contained), points <c>latest</c> at it and removes
    /// older checkpoints. Returns its folder.</summary>
    public static string Save(string runPath, string stage, int step, int totalSteps, IReadOnlyList<CheckpointModel> models,
        IReadOnlyList<(string Name, AdamW Optimizer)> optimizers, Rng rng, IReadOnlyList<double> losses, LagrangeState? lagrange = null,
        IReadOnlyList<CheckpointModel>? extras = null)
    {
        string name = $"checkpoint-{step}";
        string final = Path.Combine(runPath, name);
        string temp = final + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);

        foreach (var model in models.Concat(extras ?? [])) model.Save(Path.Combine(temp, model.File));
        WriteMoments(Path.Combine(temp, OptimizerFile), optimizers);
        var single = optimizers.Count == 1 && optimizers[0].Name.Length == 0;
        var state = new TrainerStateFile(FormatName, FormatVersion, stage, step, totalSteps, single ? optimizers[0].Optimizer.Step : 0,
            rng.State, losses.ToArray(),
            single ? null : optimizers.ToDictionary(o => o.Name, o => o.Optimizer.Step), lagrange);
        File.WriteAllText(Path.Combine(temp, StateFile), JsonSerializer.Serialize(state, Json));
        Publish(runPath, name, final, temp);
        return final;
    }

    private static void WriteMoments(string path, IReadOnlyList<(string Name, AdamW Optimizer)> optimizers)
    {
        var moments = new List<RawTensor>();
        using (TensorScope.Suspend())
        using (GradMode.NoGrad())
        {
            foreach (var (role, optimizer) in optimizers)
                foreach (var (param, m, v) in optimizer.Moments())
                {
                    var dims = m.Shape.ToArray();
                    string key = Training.SavedOptimizers.Prefix(role) + param;
                    moments.Add(new RawTensor("m." + key, DType.F64, dims, MemoryMarshal.AsBytes(m.ToDoubleArray().AsSpan()).ToArray()));
                    moments.Add(new RawTensor("v." + key, DType.F64, dims, MemoryMarshal.AsBytes(v.ToDoubleArray().AsSpan()).ToArray()));
                }
        }
        Safetensors.Write(path, moments, new Dictionary<string, string> { ["format"] = "saferlhf-adamw-moments" });
    }

    // Re-saving the same step (e.g. after a resume) replaces the old folder only once the new one is complete.
    private static void Publish(string runPath, string name, string final, string temp)
    {
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
    }

    /// <summary>Reads the checkpoint named by <c>latest</c>; any missing or malformed part throws
    /// <see cref="CheckpointException"/> naming it.</summary>
    public static LoadedCheckpoint ReadLatest(string runPath, string stage)
    {
        string latest = Path.Combine(runPath, LatestFile);
        if (!File.Exists(latest)) throw new CheckpointException($"--resume: {runPath} holds no checkpoint (no '{LatestFile}' file)");
        string name = File.ReadAllText(latest).Trim();
        if (!CheckpointName().IsMatch(name)) throw new CheckpointException($"corrupt checkpoint: {latest} does not name a checkpoint folder ('{name}')");
        string folder = Path.Combine(runPath, name);
        if (!Directory.Exists(folder)) throw new CheckpointException($"corrupt checkpoint: {folder} named by {latest} does not exist");

        var state = ReadState(Path.Combine(folder, StateFile));
        if (state.Stage != stage) throw new CheckpointException($"--resume: {folder} is a '{state.Stage}' checkpoint, not '{stage}'");
        if (!File.Exists(Path.Combine(folder, ModelFile))) throw new CheckpointException($"corrupt checkpoint: {Path.Combine(folder, ModelFile)} is missing");
        return new LoadedCheckpoint(folder, state, ReadMoments(Path.Combine(folder, OptimizerFile)));
    }

    private static TrainerStateFile ReadState(string statePath)
    {
        if (!File.Exists(statePath)) throw new CheckpointException($"corrupt checkpoint: {statePath} is missing");
        TrainerStateFile? state;
        try { state = JsonSerializer.Deserialize<TrainerStateFile>(StrictUtf8.GetString(File.ReadAllBytes(statePath)), Json); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or DecoderFallbackException)
        {
            throw new CheckpointException($"corrupt checkpoint: {statePath} is not valid trainer state ({e.Message})");
        }
        if (state is null || state.Format != FormatName || state.RngState is null || state.Losses is null)
            throw new CheckpointException($"corrupt checkpoint: {statePath} is not a {FormatName} file");
        if (state.Version < OldestReadableVersion || state.Version > FormatVersion)
            throw new CheckpointException($"checkpoint {statePath}: format version {state.Version} is not supported " +
                                          $"(this build reads versions {OldestReadableVersion} to {FormatVersion})");
        if (state.Step < 0 || state.Step > state.TotalSteps || state.Losses.Length != state.Step || state.RngState.Length != 4)
            throw new CheckpointException($"corrupt checkpoint: {statePath} is inconsistent (step {state.Step} of {state.TotalSteps}, " +
                                          $"{state.Losses.Length} losses, {state.RngState.Length} RNG words)");
        return state;
    }

    private static Dictionary<string, (double[] M, double[] V)> ReadMoments(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException($"corrupt checkpoint: {path} is missing");
        try
        {
            using var file = Safetensors.Read(path);
            var result = new Dictionary<string, (double[] M, double[] V)>(StringComparer.Ordinal);
            foreach (var raw in file.Tensors.Where(t => t.Name.StartsWith("m.", StringComparison.Ordinal)))
            {
                string param = raw.Name[2..];
                if (!file.TryGetTensor("v." + param, out var v))
                    throw new CheckpointException($"corrupt checkpoint: {path} has no second moment for '{param}'");
                result[param] = (Doubles(path, raw), Doubles(path, v));
            }
            return result;
        }
        catch (WeightFormatException e)
        {
            throw new CheckpointException($"corrupt checkpoint: {e.Message}");
        }
    }

    private static double[] Doubles(string path, RawTensor raw) => raw.DType == DType.F64
        ? MemoryMarshal.Cast<byte, double>(raw.Data.Span).ToArray()
        : throw new CheckpointException($"corrupt checkpoint: {path}: tensor '{raw.Name}' is {raw.DType}, expected F64");
}
