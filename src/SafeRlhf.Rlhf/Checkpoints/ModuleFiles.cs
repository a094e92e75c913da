using System.Globalization;
using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Checkpoints;

/// <summary>Weights of modules without a LLaMA checkpoint form (score models, critics) and the metrics log of a run.</summary>
public static class ModuleFiles
{
    /// <summary>The metadata key that marks a file holding a LoRA module's adapters and trainable parameters only.</summary>
    public const string SavedParametersKey = LlamaCheckpoint.SavedParametersKey;

    /// <summary>The value of <see cref="SavedParametersKey"/>: adapters and trainable parameters; the frozen base comes
    /// from the base model, which the <c>base_model</c> metadata names (a policy checkpoint's also states its size and
    /// SHA-256, see <see cref="LoraBase"/>).</summary>
    public const string AdaptersOnly = LlamaCheckpoint.AdaptersOnly;

    /// <summary>Writes the parameters of <paramref name="module"/> as stored. A module with LoRA adapters is written
    /// without its frozen base (which the base model holds): adapters and trainable parameters (a score head) only,
    /// marked <see cref="AdaptersOnly"/>. Without adapters every parameter is written, quantized (frozen) weights
    /// dequantized to F32.</summary>
    public static void Save(Module module, string path, IReadOnlyDictionary<string, string> metadata)
    {
        var parameters = module.NamedParameters().ToList();
        if (!parameters.Any(p => IsAdapter(p.Name)))
        {
            Safetensors.WriteTensors(path, parameters, metadata);
            return;
        }
        var marked = new Dictionary<string, string>(metadata) { [SavedParametersKey] = AdaptersOnly };
        Safetensors.WriteTensors(path, parameters.Where(p => p.Tensor.RequiresGrad || IsAdapter(p.Name)), marked);
    }

    private static bool IsAdapter(string name) => name.Contains(".lora.", StringComparison.Ordinal);

    /// <summary>Overwrites every parameter of <paramref name="module"/> with the same-named tensor of a safetensors
    /// file; a missing tensor or a different dtype or shape throws <see cref="CheckpointException"/>. Frozen base weights
    /// kept in a storage type (F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K: the base under LoRA, which training never changes) are checked for
    /// presence and shape only (files of earlier versions hold quantized ones dequantized). A file of adapters only
    /// (<see cref="AdaptersOnly"/>) leaves the frozen base weights of <paramref name="module"/> as loaded from its base
    /// model; every adapter and trainable parameter must be in it.</summary>
    public static void LoadInto(Module module, string path)
    {
        try
        {
            using var file = Safetensors.Read(path);
            bool adaptersOnly = file.Metadata.TryGetValue(SavedParametersKey, out var saved) && saved?.ToString() == AdaptersOnly;
            using var suspend = TensorScope.Suspend();
            using var noGrad = GradMode.NoGrad();
            foreach (var (name, t) in module.NamedParameters())
            {
                if (!file.TryGetTensor(name, out var raw))
                {
                    if (adaptersOnly && !t.RequiresGrad && !IsAdapter(name)) continue;
                    throw new CheckpointException($"corrupt checkpoint: {path} has no tensor '{name}'");
                }
                var dims = t.Shape.ToArray();
                if (!t.RequiresGrad && LlamaLoadOptions.StorageTypes.Contains(t.DType))
                {
                    if (!raw.Dims.SequenceEqual(dims))
                        throw new CheckpointException($"corrupt checkpoint: {path}: '{name}' is [{string.Join(", ", raw.Dims)}], " +
                                                      $"the model needs [{string.Join(", ", dims)}]");
                    continue;
                }
                if (raw.DType != t.DType || !raw.Dims.SequenceEqual(dims))
                    throw new CheckpointException($"corrupt checkpoint: {path}: '{name}' is {raw.DType} [{string.Join(", ", raw.Dims)}], " +
                                                  $"the model needs {t.DType} [{string.Join(", ", dims)}]");
                using var src = Tensor.FromBytes(t.Device, raw.DType, raw.Data.Span, dims);
                t.Backend.Copy(src, t);
            }
        }
        catch (WeightFormatException e)
        {
            throw new CheckpointException($"corrupt checkpoint: {e.Message}");
        }
    }
}

/// <summary>A run's metrics.jsonl: one JSON object per step with its stage, step and values.</summary>
public static class MetricsLog
{
    /// <summary>Keeps the lines of the steps a checkpoint covers (drops those written after it).</summary>
    public static void Truncate(string metricsPath, int step)
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

    /// <summary>The values of every step (without its stage and step fields), in order; a malformed line throws
    /// <see cref="CheckpointException"/> naming the file and line.</summary>
    public static List<IReadOnlyDictionary<string, double>> ReadValues(string metricsPath)
    {
        var steps = new List<IReadOnlyDictionary<string, double>>();
        if (!File.Exists(metricsPath)) return steps;
        int lineNumber = 0;
        foreach (var line in File.ReadLines(metricsPath))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var values = new Dictionary<string, double>(StringComparer.Ordinal);
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (p.Value.ValueKind == JsonValueKind.Number && p.Name != "step") values[p.Name] = p.Value.GetDouble();
                    else if (p.Value.ValueKind == JsonValueKind.String && p.Name != "stage")
                        values[p.Name] = double.Parse(p.Value.GetString()!, CultureInfo.InvariantCulture); // NaN, Infinity
                steps.Add(values);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                throw new CheckpointException($"corrupt run folder: {metricsPath}:{lineNumber}: not a metrics row ({e.Message})");
            }
        }
        return steps;
    }
}
