using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama.Loading;

/// <summary>Builds a <see cref="LlamaModel"/> from a weight file: a llama2.c checkpoint, a GGUF file, a Hugging Face
/// checkpoint folder (q/k already un-permuted by the reader) or a safetensors checkpoint written by
/// <see cref="LlamaCheckpoint"/>. Dense weights become the compute type (F16, BF16 and F64 are converted, Q8_0 and
/// Q4_0 dequantized) unless the options keep a storage type; a llama2.c shared classifier becomes tied embeddings.
/// Errors are <see cref="WeightFormatException"/>s naming the file and the tensor.</summary>
public static class LlamaLoader
{
    /// <summary>Reads the model at <paramref name="path"/> onto <paramref name="device"/>.</summary>
    public static LlamaModel Load(string path, Device device, LlamaLoadOptions? options = null)
    {
        using var file = WeightFile.Open(path);
        return FromWeightFile(file, device, options);
    }

    /// <summary>The model configuration the file states (without reading tensor data into a device).</summary>
    public static LlamaConfig ReadConfig(string path)
    {
        using var file = WeightFile.Open(path);
        return ConfigOf(file);
    }

    /// <summary>The configuration of an open weight file: the reader's, or for a plain safetensors file the one that
    /// <see cref="LlamaCheckpoint"/> stores in its metadata.</summary>
    public static LlamaConfig ConfigOf(WeightFile file)
    {
        try
        {
            if (file.Config is { } c) return c.Validate();
            return LlamaCheckpoint.ConfigFromMetadata(file)
                   ?? throw new WeightFormatException(file.Path, null,
                       "the file states no LLaMA configuration (a safetensors file needs the metadata LlamaCheckpoint writes; " +
                       "for a Hugging Face checkpoint pass its folder, which holds config.json)");
        }
        catch (ArgumentException e)
        {
            throw new WeightFormatException(file.Path, null, e.Message, e);
        }
    }

    /// <summary>Builds the model from an open weight file (the file may be disposed afterwards). A checkpoint that
    /// holds LoRA adapters loads whole, as <see cref="LlamaCheckpoint.Load"/> reads it: the adapters belong to the
    /// policy, and its base stays as trained (asking to quantize it or change its compute type is an error); a
    /// checkpoint of adapters only reads the base model it names, sharing its frozen matrices through
    /// <see cref="LlamaLoadOptions.Shared"/>.</summary>
    public static LlamaModel FromWeightFile(WeightFile file, Device device, LlamaLoadOptions? options = null)
    {
        options = (options ?? new LlamaLoadOptions()).Validate();
        if (!LlamaCheckpoint.HasAdapters(file)) return Build(file, ConfigOf(file), device, options, requantize: null);
        if (options.Quantize is not null)
            throw new WeightFormatException(file.Path, null, $"holds LoRA adapters on the base they were trained with; it cannot be quantized to {options.Quantize} on load");
        var model = LlamaCheckpoint.Load(file.Path, device, options.Shared);
        var computeType = model.TokEmbeddings.Weight.DType;
        if (computeType != options.ComputeType)
        {
            model.Dispose();
            throw new WeightFormatException(file.Path, null, $"holds LoRA adapters on a {computeType} base; it cannot load as {options.ComputeType}");
        }
        return model;
    }

    /// <summary>Every parameter of a config with its dims ([out, in] for matrices) and whether it is a linear weight.</summary>
    public static IReadOnlyList<(string Name, int[] Dims, bool IsLinear)> Parameters(LlamaConfig c) =>
        LlamaTensorNames.Expected(c).Select(p => (p.Name, p.Dims, IsLinear: p.Dims.Length == 2 && p.Name != LlamaTensorNames.TokEmbeddings)).ToList();

    internal static LlamaModel Build(WeightFile file, LlamaConfig config, Device device, LlamaLoadOptions options,
        IReadOnlyDictionary<string, DType>? requantize)
    {
        if (options.MaxSeqLen is { } cap && cap < config.SeqLen) config = config with { SeqLen = cap };
        // The layer count is checked against the file before any per-layer structure is built (a file with a few
        // tensors missing gets past this and has the first missing one named below).
        if (config.NLayers > file.Tensors.Count)
            throw new WeightFormatException(file.Path, null,
                $"the configuration has {config.NLayers} layers ({2 + 9L * config.NLayers} tensors), the file holds only {file.Tensors.Count} tensors");
        using var suspend = TensorScope.Suspend();
        using var noGrad = GradMode.NoGrad();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, dims, isLinear) in Parameters(config))
            {
                if (!file.TryGetTensor(name, out var raw))
                    throw new WeightFormatException(file.Path, name,
                        config.TiedEmbeddings || name != LlamaTensorNames.Output
                            ? "missing from the file"
                            : "missing from the file (the configuration does not share the classifier with tok_embeddings)");
                if (!raw.Dims.SequenceEqual(dims))
                    throw new WeightFormatException(file.Path, name,
                        $"has shape [{string.Join(", ", raw.Dims)}], the configuration needs [{string.Join(", ", dims)}]");
                DType? quantizeTo = requantize is not null
                    ? requantize.TryGetValue(name, out var q) ? q : null
                    : isLinear ? options.Quantize : null;
                tensors[name] = ToParameter(raw, file.Path, device, options, keepStorage: isLinear, quantizeTo);
            }
            return LlamaModel.FromTensors(config, device, tensors);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>One stored tensor as a parameter: kept as stored, dense in the compute type, or quantized.</summary>
    internal static Tensor ToParameter(RawTensor raw, string path, Device device, LlamaLoadOptions options, bool keepStorage, DType? quantizeTo)
    {
        try
        {
            // Dense sources (F32, F16, BF16) quantize when asked; an already quantized matrix stays as stored (no second
            // rounding); other stored types are kept when asked; everything else converts to the compute type.
            bool quantize = quantizeTo is not null && !raw.DType.IsQuantized() && options.ComputeType == DType.F32
                            && raw.Dims.Length == 2 && raw.Dims[1] % DTypeInfo.QuantBlock == 0;
            if (quantize)
                return Frozen(quantizeTo!.Value, () =>
                {
                    using var dense = Dense(raw, path, device, options.ComputeType);
                    return Ops.Quantize(dense, quantizeTo.Value);
                });
            if (keepStorage && options.KeepStorage.Contains(raw.DType))
                return Frozen(raw.DType, () => Tensor.FromBytes(device, raw.DType, raw.Data.Span, raw.Dims));
            return Dense(raw, path, device, options.ComputeType);
            Tensor Frozen(DType type, Func<Tensor> load)
            {
                // Interleaving is a layout of the same blocks: the shared cache keys it as its own type.
                if (options.InterleaveRows && type.HasInterleavedLayout() && raw.Dims.Length == 2
                    && raw.Dims[0] % DTypeInfo.InterleavedRows == 0)
                {
                    var fileLayout = load;
                    load = () =>
                    {
                        using var file = fileLayout();
                        return Ops.InterleaveRows(file);
                    };
                    type = type.Interleaved();
                }
                return options.Shared?.Share(path, raw.Name, type, load) ?? load();
            }
        }
        catch (Exception e) when (e is TensorShapeException or TensorDTypeException or ArgumentException or NotSupportedException)
        {
            throw new WeightFormatException(path, raw.Name, e.Message, e);
        }
    }

    /// <summary>A stored tensor converted to <paramref name="dtype"/> (F32 or F64).</summary>
    internal static Tensor Dense(RawTensor raw, string path, Device device, DType dtype)
    {
        if (raw.DType == dtype) return Tensor.FromBytes(device, dtype, raw.Data.Span, raw.Dims);
        switch (raw.DType)
        {
            case DType.Q8_0 or DType.Q4_0 or DType.Q4_K or DType.Q5_K or DType.Q6_K:
                using (var q = Tensor.FromBytes(device, raw.DType, raw.Data.Span, raw.Dims))
                {
                    var f32 = Ops.Dequantize(q);
                    if (dtype == DType.F32) return f32;
                    using (f32) return f32.Cast(dtype);
                }
            case DType.F32 or DType.F64 or DType.F16 or DType.BF16:
                return dtype == DType.F64
                    ? Tensor.FromArray(device, raw.ToDoubleArray(), raw.Dims)
                    : Tensor.FromArray(device, raw.ToSingleArray(), raw.Dims);
            default:
                throw new WeightFormatException(path, raw.Name, $"{raw.DType} is not a weight type (F32, F64, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K are)");
        }
    }
}
