using System.Text;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>Writes GGUF version 3 files that <see cref="GgufReader"/> (and llama.cpp) read: the header, metadata and
/// tensor infos first (every tensor's offset follows from its type and shape), then each tensor's bytes, produced one
/// at a time and aligned to <see cref="GgufReader.DefaultAlignment"/>. Metadata values may be string, bool, byte,
/// int, uint, long, ulong, float or double (each written with the matching GGUF type), or a string, float or int array. Tensor
/// types F32, F16, BF16, F64, I32, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K. The file is written atomically.</summary>
public static class GgufWriter
{
    private const uint Version = 3;

    /// <summary>Writes <paramref name="tensors"/> (names as stored, e.g. llama.cpp names) with
    /// <paramref name="metadata"/> (in the given order) to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<KeyValuePair<string, object>> metadata, IReadOnlyList<StreamedTensor> tensors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor name '{t.Name}' occurs twice");
            GgmlNumber(t);
        }
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, _) in metadata)
            if (!keys.Add(key)) throw new ArgumentException($"metadata key '{key}' occurs twice");
        byte[] header = BuildHeader(metadata, tensors);
        AtomicFile.Write(path, fs =>
        {
            fs.Write(header);
            for (int i = 0; i < tensors.Count; i++)
            {
                if (i > 0) Pad(fs);
                tensors[i].WriteChecked(fs);
            }
        });
    }

    /// <summary>The llama.* hyper-parameters of <paramref name="c"/> as GGUF metadata, in the keys and types llama.cpp
    /// reads (<see cref="GgufReader"/> reads them back into the same configuration).</summary>
    public static IEnumerable<KeyValuePair<string, object>> LlamaHyperParameters(LlamaConfig c) =>
    [
        new("llama.vocab_size", (uint)c.VocabSize),
        new("llama.context_length", (uint)c.SeqLen),
        new("llama.embedding_length", (uint)c.Dim),
        new("llama.block_count", (uint)c.NLayers),
        new("llama.feed_forward_length", (uint)c.HiddenDim),
        new("llama.rope.dimension_count", (uint)c.HeadDim),
        new("llama.attention.head_count", (uint)c.NHeads),
        new("llama.attention.head_count_kv", (uint)c.NKvHeads),
        new("llama.attention.layer_norm_rms_epsilon", (float)c.NormEps),
        new("llama.rope.freq_base", (float)c.RopeTheta),
    ];

    /// <summary>The llama.cpp name of a Meta tensor name (inverse of <see cref="GgufReader.ToMetaName"/>).</summary>
    public static string ToGgufName(string metaName)
    {
        switch (metaName)
        {
            case LlamaTensorNames.TokEmbeddings: return "token_embd.weight";
            case LlamaTensorNames.Norm: return "output_norm.weight";
            case LlamaTensorNames.Output: return "output.weight";
        }
        string[] parts = metaName.Split('.');
        if (parts.Length < 3 || parts[0] != "layers" || !int.TryParse(parts[1], out int layer)) return metaName;
        string rest = string.Join('.', parts[2..]);
        string? block = rest switch
        {
            "attention_norm.weight" => "attn_norm",
            "attention.wq.weight" => "attn_q",
            "attention.wk.weight" => "attn_k",
            "attention.wv.weight" => "attn_v",
            "attention.wo.weight" => "attn_output",
            "ffn_norm.weight" => "ffn_norm",
            "feed_forward.w1.weight" => "ffn_gate",
            "feed_forward.w2.weight" => "ffn_down",
            "feed_forward.w3.weight" => "ffn_up",
            _ => null,
        };
        return block is null ? metaName : $"blk.{layer}.{block}.weight";
    }

    private static uint GgmlNumber(StreamedTensor t) =>
        t.DType is DType.F32 or DType.F16 or DType.BF16 or DType.F64 or DType.I32 || t.DType.IsQuantized()
            ? GgmlTypes.Number(t.DType)
            : throw new ArgumentException($"tensor '{t.Name}': {t.DType} has no GGUF type");

    private static void Pad(Stream s)
    {
        long pad = (GgufReader.DefaultAlignment - s.Position % GgufReader.DefaultAlignment) % GgufReader.DefaultAlignment;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    private static byte[] BuildHeader(IReadOnlyList<KeyValuePair<string, object>> metadata, IReadOnlyList<StreamedTensor> tensors)
    {
        var buffer = new MemoryStream();
        var w = new BinaryWriter(buffer, Encoding.UTF8);
        w.Write(GgufReader.Magic);
        w.Write(Version);
        w.Write((ulong)tensors.Count);
        w.Write((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            WriteString(w, key);
            WriteValue(w, key, value);
        }
        ulong offset = 0;
        foreach (var t in tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Dims.Length);
            for (int d = t.Dims.Length - 1; d >= 0; d--) w.Write((ulong)t.Dims[d]);
            w.Write(GgmlNumber(t));
            w.Write(offset);
            ulong bytes = (ulong)t.ByteCount;
            offset += (bytes + GgufReader.DefaultAlignment - 1) / GgufReader.DefaultAlignment * GgufReader.DefaultAlignment;
        }
        w.Flush();
        Pad(buffer);
        return buffer.ToArray();
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, string key, object value)
    {
        switch (value)
        {
            case string s: w.Write((uint)GgufValueType.String); WriteString(w, s); break;
            case bool b: w.Write((uint)GgufValueType.Bool); w.Write((byte)(b ? 1 : 0)); break;
            case byte v: w.Write((uint)GgufValueType.UInt8); w.Write(v); break;
            case int v: w.Write((uint)GgufValueType.Int32); w.Write(v); break;
            case uint v: w.Write((uint)GgufValueType.UInt32); w.Write(v); break;
            case long v: w.Write((uint)GgufValueType.Int64); w.Write(v); break;
            case ulong v: w.Write((uint)GgufValueType.UInt64); w.Write(v); break;
            case float v: w.Write((uint)GgufValueType.Float32); w.Write(v); break;
            case double v: w.Write((uint)GgufValueType.Float64); w.Write(v); break;
            case string[] list:
                w.Write((uint)GgufValueType.Array);
                w.Write((uint)GgufValueType.String);
                w.Write((ulong)list.Length);
                foreach (var s in list) WriteString(w, s);
                break;
            case float[] list:
                w.Write((uint)GgufValueType.Array);
                w.Write((uint)GgufValueType.Float32);
                w.Write((ulong)list.Length);
                foreach (var v in list) w.Write(v);
                break;
            case int[] list:
                w.Write((uint)GgufValueType.Array);
                w.Write((uint)GgufValueType.Int32);
                w.Write((ulong)list.Length);
                foreach (var v in list) w.Write(v);
                break;
            default:
                throw new ArgumentException($"metadata '{key}': values of type {value?.GetType().Name ?? "null"} cannot be written to GGUF");
        }
    }
}
