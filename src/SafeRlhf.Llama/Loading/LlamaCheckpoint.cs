using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Loading;

/// <summary>A model saved as one safetensors file: every parameter under its Meta name (LoRA adapters as
/// <c>&lt;linear&gt;.lora.a</c> / <c>.lora.b</c>), the configuration and the caller's metadata in the header. The file
/// is written atomically. Quantized weights are stored dequantized (F32) and quantized again on load, which gives
/// back the same blocks.</summary>
public static class LlamaCheckpoint
{
    /// <summary>Value of the <c>format</c> metadata key.</summary>
    public const string FormatName = "saferlhf-llama";

    /// <summary>Value of the <c>format_version</c> metadata key.</summary>
    public const int FormatVersion = 1;

    private const string FormatKey = "format";
    private const string VersionKey = "format_version";
    private const string ConfigKey = "llama_config";
    private const string QuantizedKey = "quantized";
    private const string LoraScalesKey = "lora_scales";
    private static readonly string[] Reserved = [FormatKey, VersionKey, ConfigKey, QuantizedKey, LoraScalesKey];

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed record ConfigJson(int Dim, int HiddenDim, int NLayers, int NHeads, int NKvHeads, int VocabSize, int SeqLen,
        double NormEps, double RopeTheta, string RopeStyle, bool TiedEmbeddings);

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> with the caller's string
    /// <paramref name="metadata"/> (keys format, format_version, llama_config, quantized and lora_scales are reserved).</summary>
    public static void Save(LlamaModel model, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = Header(model.Config, metadata);

        var scales = LinearsByName(model).Where(p => p.Linear.Lora is not null)
            .ToDictionary(p => p.Name, p => p.Linear.Lora!.ScaleFactor, StringComparer.Ordinal);
        if (scales.Count > 0) header[LoraScalesKey] = JsonSerializer.Serialize(scales);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        // Every tensor as it is held: a frozen Q8_0/Q4_0 base stays quantized (its blocks, not a dequantized copy).
        Safetensors.WriteTensors(path, model.NamedParameters(), header);
    }

    /// <summary>The header metadata of a checkpoint of a model with <paramref name="config"/>: the caller's
    /// <paramref name="metadata"/> (reserved keys refused), the format name and version and the configuration.</summary>
    internal static Dictionary<string, string> Header(LlamaConfig config, IReadOnlyDictionary<string, string>? metadata)
    {
        var header = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
        {
            if (Reserved.Contains(k)) throw new ArgumentException($"checkpoint metadata key '{k}' is reserved", nameof(metadata));
            header[k] = v;
        }
        var c = config;
        header[FormatKey] = FormatName;
        header[VersionKey] = FormatVersion.ToString(CultureInfo.InvariantCulture);
        header[ConfigKey] = JsonSerializer.Serialize(new ConfigJson(c.Dim, c.HiddenDim, c.NLayers, c.NHeads, c.NKvHeads, c.VocabSize,
            c.SeqLen, c.NormEps, c.RopeTheta, c.RopeStyle.ToString(), c.TiedEmbeddings), Json);
        return header;
    }

    /// <summary>Reads a checkpoint written by <see cref="Save"/>: the same parameters, dtypes, quantized weights and
    /// LoRA adapters (with everything but the adapters frozen, as after <see cref="LlamaModel.AddLora"/>).</summary>
    public static LlamaModel Load(string path, Device device)
    {
        using var file = Safetensors.Read(path);
        var config = ConfigFromMetadata(file)
                     ?? throw new WeightFormatException(path, null, $"not a {FormatName} checkpoint: no '{ConfigKey}' metadata");
        var quantized = ReadMap(file, QuantizedKey, s => Enum.TryParse<DType>(s, out var d) && d.IsQuantized() ? d : (DType?)null);
        var scales = ReadMap(file, LoraScalesKey, s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : (double?)null);
        var computeType = file.TryGetTensor(LlamaTensorNames.TokEmbeddings, out var emb) ? emb.DType : DType.F32;
        var storage = file.Tensors.Select(t => t.DType).Where(LlamaLoadOptions.StorageTypes.Contains).ToHashSet();
        var options = new LlamaLoadOptions { ComputeType = computeType, KeepStorage = storage };
        var model = LlamaLoader.Build(file, config, device, options, quantized);
        try
        {
            var known = LlamaLoader.Parameters(config).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            var linears = LinearsByName(model).ToDictionary(p => p.Name, p => p.Linear, StringComparer.Ordinal);
            foreach (var raw in file.Tensors)
            {
                if (known.Contains(raw.Name)) continue;
                if (!raw.Name.EndsWith(".lora.a", StringComparison.Ordinal) && !raw.Name.EndsWith(".lora.b", StringComparison.Ordinal))
                    throw new WeightFormatException(path, raw.Name, "is not a parameter of the configured model");
            }
            bool anyLora = false;
            foreach (var (name, scale) in scales)
            {
                if (!linears.TryGetValue(name, out var linear))
                    throw new WeightFormatException(path, name, "LoRA scale given for a layer the model does not have");
                var a = file[name + ".lora.a"];
                var b = file[name + ".lora.b"];
                if (a.Dims is not [> 0, _] || !double.IsFinite(scale))
                    throw new WeightFormatException(path, a.Name, $"LoRA adapter [{string.Join(", ", a.Dims)}] with scale {scale} is not a [rank, in] matrix with a finite scale");
                int rank = a.Dims[0];
                using (TensorScope.Suspend())
                using (GradMode.NoGrad())
                {
                    linear.AddLora(rank, scale * rank, new Rng(0));
                    CopyInto(path, a, linear.Lora!.A, device);
                    CopyInto(path, b, linear.Lora!.B, device);
                }
                anyLora = true;
            }
            if (anyLora)
                foreach (var (name, p) in model.NamedParameters())
                    if (!name.Contains(".lora.", StringComparison.Ordinal)) p.RequiresGrad = false;
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file is a checkpoint written by <see cref="Save"/> from a model with LoRA adapters.</summary>
    public static bool HasAdapters(WeightFile file) => file.Metadata.ContainsKey(LoraScalesKey);

    /// <summary>The caller's metadata stored by <see cref="Save"/> (reserved keys left out).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        using var file = Safetensors.Read(path);
        return file.Metadata.Where(p => !Reserved.Contains(p.Key))
            .ToDictionary(p => p.Key, p => p.Value as string ?? p.Value.ToString() ?? "", StringComparer.Ordinal);
    }

    /// <summary>The configuration stored in a checkpoint's metadata, or null when the file has none.</summary>
    internal static LlamaConfig? ConfigFromMetadata(WeightFile file)
    {
        if (!file.Metadata.TryGetValue(ConfigKey, out var value) || value is not string json) return null;
        if (file.Metadata.TryGetValue(VersionKey, out var v) && v is string version && version != FormatVersion.ToString(CultureInfo.InvariantCulture))
            throw new WeightFormatException(file.Path, VersionKey, $"checkpoint format version {version} is not supported (this build reads {FormatVersion})");
        ConfigJson c;
        try
        {
            c = JsonSerializer.Deserialize<ConfigJson>(json, Json) ?? throw new JsonException("null");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
        {
            throw new WeightFormatException(file.Path, ConfigKey, $"metadata is not a valid configuration ({e.Message})", e);
        }
        if (!Enum.TryParse<RopeStyle>(c.RopeStyle, out var rope))
            throw new WeightFormatException(file.Path, ConfigKey, $"unknown rope style '{c.RopeStyle}'");
        try
        {
            return new LlamaConfig
            {
                Dim = c.Dim, HiddenDim = c.HiddenDim, NLayers = c.NLayers, NHeads = c.NHeads, NKvHeads = c.NKvHeads,
                VocabSize = c.VocabSize, SeqLen = c.SeqLen, NormEps = c.NormEps, RopeTheta = c.RopeTheta, RopeStyle = rope,
                TiedEmbeddings = c.TiedEmbeddings,
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new WeightFormatException(file.Path, ConfigKey, e.Message, e);
        }
    }

    private static Dictionary<string, T> ReadMap<T>(WeightFile file, string key, Func<string, T?> parse) where T : struct
    {
        var result = new Dictionary<string, T>(StringComparer.Ordinal);
        if (!file.Metadata.TryGetValue(key, out var value)) return result;
        try
        {
            var map = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>((string)value) ?? [];
            foreach (var (name, element) in map)
                result[name] = parse(element.ValueKind == JsonValueKind.String ? element.GetString()! : element.GetRawText())
                               ?? throw new WeightFormatException(file.Path, name, $"invalid '{key}' entry {element.GetRawText()}");
        }
        catch (Exception e) when (e is JsonException or InvalidCastException or InvalidOperationException)
        {
            throw new WeightFormatException(file.Path, key, $"metadata is not a JSON object ({e.Message})", e);
        }
        return result;
    }

    private static void CopyInto(string path, RawTensor raw, Tensor dst, Device device)
    {
        if (!raw.Dims.SequenceEqual(dst.Shape.ToArray()))
            throw new WeightFormatException(path, raw.Name, $"has shape [{string.Join(", ", raw.Dims)}], the adapter needs {dst.Shape}");
        using var src = LlamaLoader.Dense(raw, path, device, dst.DType);
        dst.Backend.Copy(src, dst);
    }

    /// <summary>Every linear layer under its Meta prefix (the weight name without ".weight").</summary>
    private static IEnumerable<(string Name, Linear Linear)> LinearsByName(LlamaModel model)
    {
        var names = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, t) in model.NamedParameters()) names[t] = name;
        foreach (var layer in model.Layers)
            foreach (var (_, linear) in layer.NamedLinears)
                yield return (names[linear.Weight][..^".weight".Length], linear);
        if (model.Output is { } output) yield return ("output", output);
    }
}
