using System.Globalization;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Init;

/// <summary>Writes a randomly initialised LLaMA checkpoint (the weights of <see cref="RandomWeights"/>) that
/// <see cref="LlamaLoader"/> loads, without ever holding more than one chunk of values in memory: the header is
/// laid out from the configuration first, then every tensor is generated (in parallel), encoded and written in chunks
/// of at most <see cref="ChunkElements"/> values through buffers that are reused for the whole file. A 7B model
/// therefore takes a few megabytes to write, whatever its size on disk.</summary>
public static class RandomCheckpoint
{
    /// <summary>Most values generated and encoded at once: a multiple of the quantization block and of
    /// <see cref="RandomTensorValues.SegmentElements"/> (so chunks start at segment and block boundaries).</summary>
    public const int ChunkElements = 1 << 19;

    /// <summary>GGUF metadata key holding the seed.</summary>
    public const string SeedKey = "saferlhf.init.seed";

    /// <summary>The file name of the model in an output folder.</summary>
    public static string FileName(CheckpointFormat format) => format == CheckpointFormat.Gguf ? "model.gguf" : "model.safetensors";

    /// <summary>Every tensor of the file in order: Meta name, dims and stored type.</summary>
    public static IReadOnlyList<(string Name, int[] Dims, DType DType)> Plan(LlamaConfig config, RandomCheckpointOptions options)
    {
        config.Validate();
        options.Validate();
        return LlamaLoader.Parameters(config)
            .Select(p => (p.Name, p.Dims, options.Mix is { } mix
                ? QuantMixes.TypeOf(mix, p.Name, p.Dims, config.NLayers) ?? DType.F32
                : StoredType(p.Dims, p.IsLinear, options)))
            .ToList();
    }

    /// <summary>Bytes of tensor data the file will hold (without header and padding).</summary>
    public static long DataBytes(LlamaConfig config, RandomCheckpointOptions options) =>
        Plan(config, options).Sum(t => RawTensor.ByteCount(t.DType, t.Dims));

    /// <summary>Writes the checkpoint to <paramref name="path"/> (atomically). <paramref name="progress"/> is called
    /// after each tensor with the number of tensors written and the total.</summary>
    public static void Write(string path, LlamaConfig config, RandomCheckpointOptions options, Action<int, int>? progress = null)
    {
        if (options.Vocabulary is { } vocabulary && vocabulary.Model.Pieces.Count != config.VocabSize)
            throw new ArgumentException($"{vocabulary.SourcePath} has {vocabulary.Model.Pieces.Count} tokens, the model's vocabulary is " +
                                        $"{config.VocabSize}: they must be equal for the file to load");
        var plan = Plan(config, options);
        var encoder = new ChunkEncoder();
        int done = 0;
        StreamedTensor Streamed(string storedName, string name, int[] dims, DType dtype) => new(storedName, dtype, dims, stream =>
        {
            encoder.Write(stream, RandomWeights.Values(options.Seed, name, dims), dims, dtype);
            progress?.Invoke(++done, plan.Count);
        });
        if (options.Format == CheckpointFormat.Gguf)
        {
            var tensors = plan.Select(t => Streamed(GgufWriter.ToGgufName(t.Name), t.Name, t.Dims, t.DType)).ToList();
            GgufWriter.Write(path, GgufMetadata(config, options, plan), tensors);
        }
        else
        {
            var tensors = plan.Select(t => Streamed(t.Name, t.Name, t.Dims, t.DType)).ToList();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["name"] = options.Name,
                ["init_seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
            };
            Safetensors.WriteStreamed(path, tensors, LlamaCheckpoint.Header(config, metadata));
        }
    }

    private static DType StoredType(int[] dims, bool isLinear, RandomCheckpointOptions options)
    {
        if (!isLinear) return DType.F32;
        if (options.Quantize is { } q && dims[^1] % DTypeInfo.QuantBlock == 0) return q;
        return options.MatrixType;
    }

    private static List<KeyValuePair<string, object>> GgufMetadata(LlamaConfig c, RandomCheckpointOptions options,
        IReadOnlyList<(string Name, int[] Dims, DType DType)> plan)
    {
        // llama.cpp's file types: all F32, mostly F16 / Q4_0 / Q8_0 / BF16.
        var matrixType = plan.Where(t => t.Dims.Length == 2 && t.Name != LlamaTensorNames.TokEmbeddings).Select(t => t.DType).FirstOrDefault();
        uint fileType = options.Mix is { } mix ? QuantMixes.FileType(mix)
            : matrixType switch { DType.F16 => 1, DType.Q4_0 => 2, DType.Q8_0 => 7, DType.BF16 => 32, _ => 0 };
        return
        [
            new("general.architecture", "llama"),
            new("general.name", options.Name),
            new("general.file_type", fileType),
            .. GgufWriter.LlamaHyperParameters(c),
            new(SeedKey, options.Seed),
            .. options.Vocabulary?.GgufMetadata() ?? [],
        ];
    }

    /// <summary>Generates, encodes and writes tensors in chunks through two reused buffers.</summary>
    private sealed class ChunkEncoder
    {
        private readonly float[] _values = new float[ChunkElements];
        private readonly byte[] _bytes = new byte[DType.F32.ByteCount(ChunkElements)];

        public void Write(Stream stream, RandomTensorValues source, int[] dims, DType dtype)
        {
            long count = RawTensor.Count(dims);
            for (long at = 0; at < count; at += ChunkElements)
            {
                int n = (int)Math.Min(ChunkElements, count - at);
                var values = _values.AsMemory(0, n);
                source.Fill(values);
                int bytes = (int)dtype.ByteCount(n);
                WeightEncoder.Encode(dtype, values.Span, _bytes.AsSpan(0, bytes));
                stream.Write(_bytes, 0, bytes);
            }
        }
    }
}
