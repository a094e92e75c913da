using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Loading;

/// <summary>A model saved as one safetensors file: every parameter under its Meta name (LoRA adapters as
/// <c>&lt;linear&gt;.lora.a</c> / <c>.lora.b</c>), the configuration and the caller's metadata in the header. Frozen
/// weights are written as held (a Q8_0/Q4_0/K-quant/F16/BF16 base keeps its blocks). A model with LoRA adapters saved
/// with the reference of its base (<see cref="LoraBase"/>) holds its adapters and trainable tensors only, marked
/// <see cref="AdaptersOnly"/>, with the base's path, size and SHA-256 and the type each frozen tensor was held in;
/// loading it reads the base again and rebuilds the same frozen tensors.</summary>
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
    private const string BaseTypesKey = "base_dtypes";

    /// <summary>The metadata key that marks a file holding a LoRA model's adapters and trainable parameters only.</summary>
    public const string SavedParametersKey = "saved_parameters";

    /// <summary>The value of <see cref="SavedParametersKey"/>: adapters and trainable parameters; the frozen base comes
    /// from the base model the file names.</summary>
    public const string AdaptersOnly = "adapters_and_trainable";

    private static readonly string[] Reserved =
        [FormatKey, VersionKey, ConfigKey, QuantizedKey, LoraScalesKey, BaseTypesKey, SavedParametersKey, .. LoraBase.Keys];

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed record ConfigJson(int Dim, int HiddenDim, int NLayers, int NHeads, int NKvHeads, int VocabSize, int SeqLen,
        double NormEps, double RopeTheta, string RopeStyle, bool TiedEmbeddings);

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> with the caller's string
    /// <paramref name="metadata"/> (keys format, format_version, llama_config, quantized, lora_scales, base_dtypes,
    /// saved_parameters and the base reference's keys are reserved). A model with LoRA adapters and a
    /// <paramref name="loraBase"/> is written without its frozen base: adapters and trainable parameters only, with the
    /// base's reference and the type of every frozen tensor. Otherwise every tensor is written as held.</summary>
    public static void Save(LlamaModel model, string path, IReadOnlyDictionary<string, string>? metadata = null, LoraBase? loraBase = null)
    {
        var header = Header(model.Config, metadata);

        var scales = LinearsByName(model).Where(p => p.Linear.Lora is not null)
            .ToDictionary(p => p.Name, p => p.Linear.Lora!.ScaleFactor, StringComparer.Ordinal);
        if (scales.Count > 0) header[LoraScalesKey] = JsonSerializer.Serialize(scales);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
        var parameters = model.NamedParameters().ToList();
        if (scales.Count > 0 && loraBase is not null)
        {
            bool Saved((string Name, Tensor Tensor) p) => p.Tensor.RequiresGrad || IsAdapter(p.Name);
            header[SavedParametersKey] = AdaptersOnly;
            loraBase.WriteTo(header);
            header[BaseTypesKey] = JsonSerializer.Serialize(parameters.Where(p => !Saved(p))
                .ToDictionary(p => p.Name, p => p.Tensor.DType.ToString(), StringComparer.Ordinal));
            Safetensors.WriteTensors(path, parameters.Where(Saved), header);
            return;
        }
        // Every tensor as it is held: a frozen Q8_0/Q4_0 base stays quantized (its blocks, not a dequantized copy).
        Safetensors.WriteTensors(path, parameters, header);
    }

    private static bool IsAdapter(string name) =>
        name.EndsWith(".lora.a", StringComparison.Ordinal) || name.EndsWith(".lora.b", StringComparison.Ordinal);

    /// <summary>Whether the file holds a LoRA model's adapters and trainable parameters only (its base elsewhere).</summary>
    public static bool IsAdaptersOnly(WeightFile file) =>
        file.Metadata.TryGetValue(SavedParametersKey, out var saved) && saved as string == AdaptersOnly;

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
    /// LoRA adapters (with everything but the adapters frozen, as after <see cref="LlamaModel.AddLora"/>). A file of
    /// adapters only reads its base model again (checked against the stored size and SHA-256, see
    /// <see cref="LoraBase.Verify"/>); its frozen matrices come from <paramref name="shared"/> when given.</summary>
    public static LlamaModel Load(string path, Device device, FrozenWeightCache? shared = null)
    {
        using var file = Safetensors.Read(path);
        var config = ConfigFromMetadata(file)
                     ?? throw new WeightFormatException(path, null, $"not a {FormatName} checkpoint: no '{ConfigKey}' metadata");
        var scales = ReadMap(file, LoraScalesKey, s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : (double?)null);
        bool adaptersOnly = IsAdaptersOnly(file);
        var model = adaptersOnly ? BuildBase(file, config, device, shared) : BuildWhole(file, config, device);
        try
        {
            var known = LlamaLoader.Parameters(config).Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
            var linears = LinearsByName(model).ToDictionary(p => p.Name, p => p.Linear, StringComparer.Ordinal);
            var parameters = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor, StringComparer.Ordinal);
            foreach (var raw in file.Tensors)
            {
                if (known.Contains(raw.Name))
                {
                    // A trainable tensor saved beside the adapters replaces the base's.
                    if (adaptersOnly)
                        using (TensorScope.Suspend())
                        using (GradMode.NoGrad())
                            CopyInto(path, raw, parameters[raw.Name], device);
                    continue;
                }
                if (!IsAdapter(raw.Name))
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

    // Every parameter from the checkpoint itself, as stored (quantized ones kept, older files' F32 copies quantized again).
    private static LlamaModel BuildWhole(WeightFile file, LlamaConfig config, Device device)
    {
        var quantized = ReadMap(file, QuantizedKey, s => Enum.TryParse<DType>(s, out var d) && d.IsQuantized() ? d : (DType?)null);
        var computeType = file.TryGetTensor(LlamaTensorNames.TokEmbeddings, out var emb) ? emb.DType : DType.F32;
        var storage = file.Tensors.Select(t => t.DType).Where(LlamaLoadOptions.StorageTypes.Contains).ToHashSet();
        var options = new LlamaLoadOptions { ComputeType = computeType, KeepStorage = storage };
        return LlamaLoader.Build(file, config, device, options, quantized);
    }

    // The frozen parameters of an adapters-only checkpoint: its base model read again as training held it (each
    // tensor in its recorded type: kept as stored, quantized on load, or dense in the compute type).
    private static LlamaModel BuildBase(WeightFile file, LlamaConfig config, Device device, FrozenWeightCache? shared)
    {
        var reference = LoraBase.FromMetadata(file)
                        ?? throw new WeightFormatException(file.Path, LoraBase.PathKey, "an adapters-only checkpoint must name its base model");
        var types = ReadMap(file, BaseTypesKey, s => Enum.TryParse<DType>(s, out var d) ? d : (DType?)null);
        // The compute type is the token embedding's (frozen and recorded, or trained and saved).
        DType computeType = types.TryGetValue(LlamaTensorNames.TokEmbeddings, out var recorded) ? recorded
            : file.TryGetTensor(LlamaTensorNames.TokEmbeddings, out var embedding) ? embedding.DType
            : throw new WeightFormatException(file.Path, BaseTypesKey, $"metadata does not give the type of '{LlamaTensorNames.TokEmbeddings}'");
        reference.Verify(file.Path);
        using var baseFile = WeightFile.Open(reference.Path);
        var options = new LlamaLoadOptions
        {
            ComputeType = computeType,
            KeepStorage = types.Values.Where(LlamaLoadOptions.StorageTypes.Contains).ToHashSet(),
            Shared = shared,
        };
        var requantize = types.Where(t => t.Value.IsQuantized()).ToDictionary(t => t.Key, t => t.Value, StringComparer.Ordinal);
        LlamaModel model;
        try
        {
            model = LlamaLoader.Build(baseFile, config, device, options, requantize);
        }
        catch (WeightFormatException e)
        {
            throw new LoraBaseException(file.Path, reference.Path, $"does not load as the checkpoint's base: {e.Message}");
        }
        foreach (var (name, p) in model.NamedParameters())
            if (types.TryGetValue(name, out var held) && p.DType != held)
            {
                model.Dispose();
                throw new LoraBaseException(file.Path, reference.Path, $"gives '{name}' as {p.DType}; the adapters were trained on it as {held}");
            }
        return model;
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
