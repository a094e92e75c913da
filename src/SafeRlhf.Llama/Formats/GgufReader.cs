using System.Globalization;
using System.Text.RegularExpressions;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>Value types of GGUF metadata.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>Reads GGUF files (versions 2 and 3): magic "GGUF", version, tensor count, metadata key/values (every value
/// type, arrays included), tensor infos, then tensor data aligned to general.alignment (default 32). Tensor types
/// F32, F16, BF16, F64, I32, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K are held as stored; Q4_1, Q5_0, Q5_1, Q2_K and Q3_K are
/// dequantized to F32 as the file is read (<see cref="GgmlTypes"/>). ggml lists dims innermost first (ne[0]); <see cref="RawTensor.Dims"/>
/// is that list reversed. Metadata values are byte, sbyte, ushort, short, uint, int, float, bool, string, ulong,
/// long, double, or a typed array of those (object[] for arrays of arrays).</summary>
public static partial class GgufReader
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    /// <summary>Largest general.alignment accepted.</summary>
    public const int MaxAlignment = 1 << 20;

    /// <summary>Reads a GGUF file. With <paramref name="metaNames"/> the llama tensor names (token_embd, blk.N.attn_q, …)
    /// are renamed to Meta names (tok_embeddings, layers.N.attention.wq, …); GGUF already stores wq/wk in Meta order.</summary>
    public static WeightFile Read(string path, bool metaNames = true)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Read(file, metaNames);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static WeightFile Read(MappedFile file, bool metaNames)
    {
        string path = file.Path;
        var r = new ByteReader(file) { Context = "header" };
        uint magic = r.ReadUInt32();
        if (magic != Magic) throw new WeightFormatException(path, null, $"not a GGUF file: magic 0x{magic:X8}, expected 0x{Magic:X8} (\"GGUF\")");
        uint version = r.ReadUInt32();
        if (version is not (2 or 3)) throw new WeightFormatException(path, null, $"GGUF version {version} is not supported (2 and 3 are)");
        ulong tensorCount = r.ReadUInt64();
        ulong kvCount = r.ReadUInt64();
        // Each tensor info and each key/value takes at least 8 bytes.
        if (tensorCount > (ulong)r.Remaining / 8 || kvCount > (ulong)r.Remaining / 8)
            throw new WeightFormatException(path, null, $"header counts ({tensorCount} tensors, {kvCount} metadata entries) do not fit a file of {file.Length} bytes");

        var metadata = ReadMetadata(r, kvCount, path);
        var infos = ReadTensorInfos(r, tensorCount, path);
        long alignment = Alignment(metadata, path);
        long dataStart = (r.Position + alignment - 1) / alignment * alignment;

        var tensors = new List<RawTensor>(infos.Count);
        long consumed = dataStart;
        foreach (var info in infos)
        {
            var (tensor, end) = TensorAt(file, info, dataStart, alignment, metaNames);
            tensors.Add(tensor);
            consumed = Math.Max(consumed, end);
        }

        var config = ReadConfig(metadata, tensors, path, metaNames, file.Length);
        return new WeightFile(path, WeightFileFormat.Gguf, metadata, tensors, config, consumed, file);
    }

    private static Dictionary<string, object> ReadMetadata(ByteReader r, ulong kvCount, string path)
    {
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            r.Context = $"metadata entry {i}";
            string key = ReadString(r);
            r.Context = key;
            var type = (GgufValueType)r.ReadUInt32();
            if (!metadata.TryAdd(key, ReadValue(r, type, path, key, depth: 0)))
                throw new WeightFormatException(path, key, "metadata key occurs twice");
        }
        return metadata;
    }

    private static List<(string Name, int[] Dims, GgmlType Type, ulong Offset)> ReadTensorInfos(ByteReader r, ulong tensorCount, string path)
    {
        var infos = new List<(string Name, int[] Dims, GgmlType Type, ulong Offset)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            r.Context = $"tensor info {i}";
            string name = ReadString(r);
            r.Context = name;
            uint nDims = r.ReadUInt32();
            if (nDims > 8) throw new WeightFormatException(path, name, $"{nDims} dims (at most 8 are possible)");
            var dims = new int[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = r.ReadUInt64();
                if (ne > int.MaxValue) throw new WeightFormatException(path, name, $"dim ne[{d}] = {ne} is too large");
                dims[nDims - 1 - d] = (int)ne;
            }
            uint ggmlType = r.ReadUInt32();
            if (!GgmlTypes.TryFrom(ggmlType, out var type))
                throw new WeightFormatException(path, name, $"ggml tensor type {ggmlType} is not supported ({GgmlTypes.Supported} are)");
            ulong offset = r.ReadUInt64();
            infos.Add((name, dims, type, offset));
        }
        return infos;
    }

    /// <summary>general.alignment (a power of two up to MaxAlignment), or the default.</summary>
    private static long Alignment(Dictionary<string, object> metadata, string path)
    {
        long alignment = DefaultAlignment;
        if (metadata.TryGetValue("general.alignment", out var alignValue))
        {
            alignment = ToInt64(alignValue) ?? 0;
            if (alignment <= 0 || (alignment & (alignment - 1)) != 0 || alignment > MaxAlignment)
                throw new WeightFormatException(path, "general.alignment", $"alignment {alignValue} is not a power of two up to {MaxAlignment}");
        }
        return alignment;
    }

    /// <summary>The tensor an info describes, checked against the file, and where its data ends.</summary>
    private static (RawTensor Tensor, long End) TensorAt(MappedFile file, (string Name, int[] Dims, GgmlType Type, ulong Offset) info,
        long dataStart, long alignment, bool metaNames)
    {
        string path = file.Path;
        var (name, dims, type, offset) = info;
        int per = GgmlTypes.BlockElements(type);
        if (per > 1 && (dims.Length == 0 || dims[^1] % per != 0))
            throw new WeightFormatException(path, name, $"{type} needs a row length that is a multiple of {per}, got [{string.Join(", ", dims)}]");
        if (offset % (ulong)alignment != 0)
            throw new WeightFormatException(path, name, $"data offset {offset} is not a multiple of the alignment {alignment}");
        // The element count must not overflow (checked at 8 bytes per element, the widest type) before it is sized.
        if (!RawTensor.TryByteCount(DType.F64, dims, out _) || GgmlTypes.ByteCount(type, RawTensor.Count(dims)) is not long bytes)
            throw new WeightFormatException(path, name, $"shape [{string.Join(", ", dims)}] is too large");
        if (offset > (ulong)file.Length || (long)offset + dataStart > file.Length - bytes)
            throw new WeightFormatException(path, name,
                $"{type} [{string.Join(", ", dims)}] extends past the end of the file: data bytes [{dataStart + (decimal)offset}, {dataStart + (decimal)offset + bytes}), the file has {file.Length}");
        if (bytes > int.MaxValue) throw new WeightFormatException(path, name, $"{bytes} bytes exceed the 2 GiB limit of one tensor");
        long start = dataStart + (long)offset;
        string held = metaNames ? ToMetaName(name) : name;
        var data = file.Memory(start, (int)bytes);
        var tensor = GgmlTypes.Kept(type) is { } dtype
            ? new RawTensor(held, dtype, dims, data)
            : DequantizeAtLoad(held, type, dims, data.Span, path);
        return (tensor, start + bytes);
    }

    // Q4_1, Q5_0, Q5_1, Q2_K, Q3_K: decoded to F32 once, here (no kernel reads these layouts).
    private static RawTensor DequantizeAtLoad(string name, GgmlType type, int[] dims, ReadOnlySpan<byte> blocks, string path)
    {
        long count = RawTensor.Count(dims);
        if (count * 4 > int.MaxValue) throw new WeightFormatException(path, name, $"{type} [{string.Join(", ", dims)}] dequantized to F32 exceeds the 2 GiB limit of one tensor");
        var values = new float[count];
        GgmlLoadTimeBlocks.Dequantize(type, blocks, values);
        var bytes = new byte[count * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new RawTensor(name, DType.F32, dims, bytes);
    }

    private static string ReadString(ByteReader r) => r.ReadUtf8(r.ReadUInt64());

    private static object ReadValue(ByteReader r, GgufValueType type, string path, string key, int depth) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => (sbyte)r.ReadByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => ReadBool(r, path, key),
        GgufValueType.String => ReadString(r),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        GgufValueType.Array => ReadArray(r, path, key, depth),
        _ => throw new WeightFormatException(path, key, $"unknown metadata value type {(uint)type}"),
    };

    private static bool ReadBool(ByteReader r, string path, string key)
    {
        byte b = r.ReadByte();
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw new WeightFormatException(path, key, $"bool value {b} is neither 0 nor 1"),
        };
    }

    private static object ReadArray(ByteReader r, string path, string key, int depth)
    {
        if (depth > 4) throw new WeightFormatException(path, key, "arrays nested too deeply");
        var elementType = (GgufValueType)r.ReadUInt32();
        ulong count = r.ReadUInt64();
        if (count > (ulong)(r.Remaining / MinBytes(elementType)))
            throw new WeightFormatException(path, key, $"truncated: array of {count} {elementType} elements cannot fit in the remaining {r.Remaining} bytes");
        int n = (int)count;
        T[] Fill<T>(Func<T> read)
        {
            var a = new T[n];
            for (int i = 0; i < n; i++) a[i] = read();
            return a;
        }
        return elementType switch
        {
            GgufValueType.UInt8 => Fill(r.ReadByte),
            GgufValueType.Int8 => Fill(() => (sbyte)r.ReadByte()),
            GgufValueType.UInt16 => Fill(r.ReadUInt16),
            GgufValueType.Int16 => Fill(r.ReadInt16),
            GgufValueType.UInt32 => Fill(r.ReadUInt32),
            GgufValueType.Int32 => Fill(r.ReadInt32),
            GgufValueType.Float32 => Fill(r.ReadSingle),
            GgufValueType.Bool => Fill(() => ReadBool(r, path, key)),
            GgufValueType.String => Fill(() => ReadString(r)),
            GgufValueType.UInt64 => Fill(r.ReadUInt64),
            GgufValueType.Int64 => Fill(r.ReadInt64),
            GgufValueType.Float64 => Fill(r.ReadDouble),
            GgufValueType.Array => Fill(() => ReadArray(r, path, key, depth + 1)),
            _ => throw new WeightFormatException(path, key, $"unknown array element type {(uint)elementType}"),
        };
    }

    // Fewest bytes one element of an array of this type takes (a string is at least its 8-byte length, an array its
    // type and count), so that a count is checked against the file before the array is allocated.
    private static long MinBytes(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.Array => 12,
        _ => 8,
    };

    /// <summary>An integer metadata value of any width as long (null when not an integer or out of range).</summary>
    public static long? ToInt64(object value) => value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => null,
    };

    // Q2_K stores 256 weights in 84 bytes: no supported type takes less than 0.328 bytes per weight.
    private const double MinBytesPerParameter = 84.0 / 256;

    private static LlamaConfig? ReadConfig(Dictionary<string, object> m, List<RawTensor> tensors, string path, bool metaNames, long fileLength)
    {
        if (!m.TryGetValue("general.architecture", out var archValue) || archValue is not string arch || arch != "llama") return null;
        int Int(string key, int? fallback = null)
        {
            if (m.TryGetValue(key, out var v))
            {
                long? l = ToInt64(v);
                if (l is null || l < 0 || l > int.MaxValue) throw new WeightFormatException(path, key, $"value {v} is not a valid count");
                return (int)l;
            }
            return fallback ?? throw new WeightFormatException(path, key, "required llama metadata key is missing");
        }
        double Real(string key, double fallback) => m.TryGetValue(key, out var v)
            ? v switch { float f => f, double d => d, _ => ToInt64(v) ?? throw new WeightFormatException(path, key, $"value {v} is not a number") }
            : fallback;

        string embd = metaNames ? LlamaTensorNames.TokEmbeddings : "token_embd.weight";
        string output = metaNames ? LlamaTensorNames.Output : "output.weight";
        int? vocab = m.TryGetValue("tokenizer.ggml.tokens", out var tokens) && tokens is string[] list ? list.Length : null;
        vocab ??= tensors.FirstOrDefault(t => t.Name == embd)?.Dims is [int rows, ..] ? rows : null;
        int heads = Int("llama.attention.head_count");
        return new LlamaConfig
        {
            Dim = Int("llama.embedding_length"),
            HiddenDim = Int("llama.feed_forward_length"),
            NLayers = Int("llama.block_count"),
            NHeads = heads,
            NKvHeads = Int("llama.attention.head_count_kv", heads),
            VocabSize = Int("llama.vocab_size", vocab),
            SeqLen = Int("llama.context_length"),
            NormEps = Real("llama.attention.layer_norm_rms_epsilon", 1e-5),
            RopeTheta = Real("llama.rope.freq_base", 10000.0),
            TiedEmbeddings = !tensors.Any(t => t.Name == output),
        }.ValidateHeader(path).CheckFits(path, tensors.Count, fileLength, MinBytesPerParameter);
    }

    /// <summary>The Meta name of a llama.cpp tensor name (unchanged when it is not a LLaMA parameter).</summary>
    public static string ToMetaName(string ggufName)
    {
        switch (ggufName)
        {
            case "token_embd.weight": return LlamaTensorNames.TokEmbeddings;
            case "output_norm.weight": return LlamaTensorNames.Norm;
            case "output.weight": return LlamaTensorNames.Output;
        }
        var match = BlockName().Match(ggufName);
        if (!match.Success) return ggufName;
        if (!int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int l)) return ggufName;
        return match.Groups[2].Value switch
        {
            "attn_norm" => LlamaTensorNames.AttentionNorm(l),
            "attn_q" => LlamaTensorNames.Wq(l),
            "attn_k" => LlamaTensorNames.Wk(l),
            "attn_v" => LlamaTensorNames.Wv(l),
            "attn_output" => LlamaTensorNames.Wo(l),
            "ffn_norm" => LlamaTensorNames.FfnNorm(l),
            "ffn_gate" => LlamaTensorNames.W1(l),
            "ffn_down" => LlamaTensorNames.W2(l),
            "ffn_up" => LlamaTensorNames.W3(l),
            _ => ggufName,
        };
    }

    [GeneratedRegex(@"^blk\.(\d+)\.([a-z_]+)\.weight$")]
    private static partial Regex BlockName();
}
