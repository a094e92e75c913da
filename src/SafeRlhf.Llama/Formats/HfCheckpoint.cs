using System.Text.Json;
using System.Text.RegularExpressions;

namespace SafeRlhf.Llama.Formats;

/// <summary>Hugging Face LLaMA checkpoints: a folder with config.json and either model.safetensors or
/// model.safetensors.index.json plus its shards. Reading converts to Meta names and un-permutes wq/wk rows
/// (see <see cref="HfRopePermutation"/>) unless asked not to.</summary>
public static partial class HfCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string IndexFile = "model.safetensors.index.json";
    public const string SingleFile = "model.safetensors";

    /// <summary>Reads the checkpoint in <paramref name="directory"/>. With <paramref name="toMeta"/> the tensors are
    /// renamed to Meta names (rotary_emb.inv_freq buffers dropped) and wq/wk are un-permuted (copied).</summary>
    public static WeightFile Read(string directory, bool toMeta = true)
    {
        string configPath = Path.Combine(directory, ConfigFile);
        var config = ReadConfig(configPath);
        string indexPath = Path.Combine(directory, IndexFile);
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        var shards = new Dictionary<string, (MappedFile File, Dictionary<string, RawTensor> Tensors)>(StringComparer.Ordinal);
        var tensors = new List<RawTensor>();
        try
        {
            List<(string Tensor, string Shard)> order;
            bool indexed = File.Exists(indexPath);
            if (indexed)
                order = ReadIndex(indexPath, metadata);
            else if (File.Exists(Path.Combine(directory, SingleFile)))
                order = [];
            else
                throw new WeightFormatException(directory, null, $"neither {IndexFile} nor {SingleFile} is present");

            (MappedFile File, Dictionary<string, RawTensor> Tensors) Shard(string name)
            {
                if (shards.TryGetValue(name, out var s)) return s;
                string shardPath = Path.Combine(directory, name);
                if (!File.Exists(shardPath)) throw new WeightFormatException(shardPath, null, $"shard listed in {IndexFile} does not exist");
                var file = MappedFile.Open(shardPath);
                shards[name] = (file, new Dictionary<string, RawTensor>(StringComparer.Ordinal));
                foreach (var t in Safetensors.ReadMapped(file).Tensors) shards[name].Tensors[t.Name] = t;
                return shards[name];
            }

            if (!indexed)
                tensors.AddRange(Shard(SingleFile).Tensors.Values);
            foreach (var (name, shardName) in order)
            {
                var shard = Shard(shardName);
                if (!shard.Tensors.TryGetValue(name, out var t))
                    throw new WeightFormatException(shard.File.Path, name, $"listed in {IndexFile} but absent from the shard");
                tensors.Add(t);
            }

            if (toMeta) tensors = ToMeta(tensors, config, directory);
            if (toMeta && !config.TiedEmbeddings && !tensors.Any(t => t.Name == LlamaTensorNames.Output))
                throw new WeightFormatException(directory, LlamaTensorNames.Output, "tie_word_embeddings is false but lm_head.weight is missing");
            var owners = shards.Values.Select(s => (IDisposable)s.File).ToArray();
            return new WeightFile(directory, WeightFileFormat.HuggingFace, metadata, tensors, config, consumedBytes: 0, owners);
        }
        catch
        {
            foreach (var s in shards.Values) s.File.Dispose();
            throw;
        }
    }

    private static List<(string, string)> ReadIndex(string indexPath, Dictionary<string, object> metadata)
    {
        try
        {
            return ReadIndexUnchecked(indexPath, metadata);
        }
        catch (InvalidOperationException e)
        {
            throw NotUnicode(indexPath, e);
        }
    }

    // JsonElement throws InvalidOperationException for strings that are not valid UTF-8 or hold a lone surrogate escape.
    private static WeightFormatException NotUnicode(string path, InvalidOperationException e) =>
        new(path, null, $"a key or string is not valid Unicode ({e.Message})", e);

    private static List<(string, string)> ReadIndexUnchecked(string indexPath, Dictionary<string, object> metadata)
    {
        using var doc = ParseJson(indexPath);
        var root = doc.RootElement;
        if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
            foreach (var p in meta.EnumerateObject())
                metadata[p.Name] = p.Value.ValueKind switch
                {
                    JsonValueKind.String => p.Value.GetString()!,
                    JsonValueKind.Number when p.Value.TryGetInt64(out long l) => l,
                    JsonValueKind.Number when p.Value.TryGetDouble(out double d) => d,
                    _ => p.Value.GetRawText(),
                };
        if (!root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new WeightFormatException(indexPath, null, "no weight_map object");
        var order = new List<(string, string)>();
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String) throw new WeightFormatException(indexPath, p.Name, "weight_map value is not a file name");
            string shard = p.Value.GetString()!;
            if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard.Contains("..") || shard.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
                throw new WeightFormatException(indexPath, p.Name, $"shard name '{shard}' leaves the checkpoint folder");
            order.Add((p.Name, shard));
        }
        return order;
    }

    /// <summary>Reads a HF LLaMA config.json: hidden_size, intermediate_size, num_hidden_layers,
    /// num_attention_heads, num_key_value_heads (default: num_attention_heads), vocab_size,
    /// max_position_embeddings, rms_norm_eps (default 1e-6), rope_theta (default 10000), tie_word_embeddings.</summary>
    public static LlamaConfig ReadConfig(string configPath)
    {
        try
        {
            return ReadConfigUnchecked(configPath);
        }
        catch (InvalidOperationException e)
        {
            throw NotUnicode(configPath, e);
        }
    }

    private static LlamaConfig ReadConfigUnchecked(string configPath)
    {
        using var doc = ParseJson(configPath);
        var root = doc.RootElement;
        int Int(string key, int? fallback = null)
        {
            if (root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)) return i;
            if (root.TryGetProperty(key, out v) && v.ValueKind != JsonValueKind.Null)
                throw new WeightFormatException(configPath, key, $"'{key}' is not an integer");
            return fallback ?? throw new WeightFormatException(configPath, key, $"'{key}' is missing");
        }
        double Double(string key, double fallback)
        {
            if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d)
                ? d
                : throw new WeightFormatException(configPath, key, $"'{key}' is not a number");
        }
        bool Bool(string key, bool fallback) =>
            root.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

        int heads = Int("num_attention_heads");
        return new LlamaConfig
        {
            Dim = Int("hidden_size"),
            HiddenDim = Int("intermediate_size"),
            NLayers = Int("num_hidden_layers"),
            NHeads = heads,
            NKvHeads = Int("num_key_value_heads", heads),
            VocabSize = Int("vocab_size"),
            SeqLen = Int("max_position_embeddings", 2048),
            NormEps = Double("rms_norm_eps", 1e-6),
            RopeTheta = Double("rope_theta", 10000.0),
            TiedEmbeddings = Bool("tie_word_embeddings", false),
        }.ValidateHeader(configPath);
    }

    private static JsonDocument ParseJson(string path)
    {
        if (!File.Exists(path)) throw new WeightFormatException(path, null, "file does not exist");
        try
        {
            var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw new WeightFormatException(path, null, "not a JSON object");
            }
            return doc;
        }
        catch (JsonException e)
        {
            throw new WeightFormatException(path, null, $"not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>The Meta name of a HF LLaMA tensor name, null for buffers that carry no weights
    /// (rotary_emb.inv_freq), or the name unchanged when it is not a LLaMA parameter.</summary>
    public static string? ToMetaName(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return LlamaTensorNames.TokEmbeddings;
            case "model.norm.weight": return LlamaTensorNames.Norm;
            case "lm_head.weight": return LlamaTensorNames.Output;
        }
        var m = LayerName().Match(hfName);
        if (!m.Success) return hfName;
        if (!int.TryParse(m.Groups[1].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer))
            return hfName;
        return m.Groups[2].Value switch
        {
            "self_attn.q_proj.weight" => LlamaTensorNames.Wq(layer),
            "self_attn.k_proj.weight" => LlamaTensorNames.Wk(layer),
            "self_attn.v_proj.weight" => LlamaTensorNames.Wv(layer),
            "self_attn.o_proj.weight" => LlamaTensorNames.Wo(layer),
            "mlp.gate_proj.weight" => LlamaTensorNames.W1(layer),
            "mlp.down_proj.weight" => LlamaTensorNames.W2(layer),
            "mlp.up_proj.weight" => LlamaTensorNames.W3(layer),
            "input_layernorm.weight" => LlamaTensorNames.AttentionNorm(layer),
            "post_attention_layernorm.weight" => LlamaTensorNames.FfnNorm(layer),
            "self_attn.rotary_emb.inv_freq" => null,
            _ => hfName,
        };
    }

    /// <summary>The HF name of a Meta tensor name (inverse of <see cref="ToMetaName"/> on parameters).</summary>
    public static string ToHfName(string metaName)
    {
        switch (metaName)
        {
            case LlamaTensorNames.TokEmbeddings: return "model.embed_tokens.weight";
            case LlamaTensorNames.Norm: return "model.norm.weight";
            case LlamaTensorNames.Output: return "lm_head.weight";
        }
        var m = MetaLayerName().Match(metaName);
        if (!m.Success) return metaName;
        string prefix = $"model.layers.{m.Groups[1].Value}.";
        return m.Groups[2].Value switch
        {
            "attention.wq.weight" => prefix + "self_attn.q_proj.weight",
            "attention.wk.weight" => prefix + "self_attn.k_proj.weight",
            "attention.wv.weight" => prefix + "self_attn.v_proj.weight",
            "attention.wo.weight" => prefix + "self_attn.o_proj.weight",
            "feed_forward.w1.weight" => prefix + "mlp.gate_proj.weight",
            "feed_forward.w2.weight" => prefix + "mlp.down_proj.weight",
            "feed_forward.w3.weight" => prefix + "mlp.up_proj.weight",
            "attention_norm.weight" => prefix + "input_layernorm.weight",
            "ffn_norm.weight" => prefix + "post_attention_layernorm.weight",
            _ => metaName,
        };
    }

    /// <summary>Renames HF tensors to Meta names and un-permutes wq (n_heads) and wk (n_kv_heads).</summary>
    public static List<RawTensor> ToMeta(IEnumerable<RawTensor> hfTensors, LlamaConfig config, string path)
    {
        var result = new List<RawTensor>();
        foreach (var t in hfTensors)
        {
            string? name = ToMetaName(t.Name);
            if (name is null) continue;
            var renamed = t.WithName(name);
            bool isQ = name.EndsWith(".attention.wq.weight", StringComparison.Ordinal);
            bool isK = name.EndsWith(".attention.wk.weight", StringComparison.Ordinal);
            if (isQ || isK)
            {
                int heads = isQ ? config.NHeads : config.NKvHeads;
                int rows = heads * config.HeadDim;
                if (t.Dims.Length != 2 || t.Dims[0] != rows || t.Dims[1] != config.Dim)
                    throw new WeightFormatException(path, t.Name, $"shape [{string.Join(", ", t.Dims)}] is not [{rows}, {config.Dim}] from config.json");
                renamed = HfRopePermutation.Unpermute(renamed, heads);
            }
            result.Add(renamed);
        }
        return result;
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerName();

    [GeneratedRegex(@"^layers\.(\d+)\.(.+)$")]
    private static partial Regex MetaLayerName();
}
