using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

public sealed class HfCheckpointTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 8, HiddenDim = 12, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 10, SeqLen = 16,
        NormEps = 1e-6, RopeTheta = 500000, TiedEmbeddings = false,
    };

    /// <summary>Random Meta weights, written as a HF checkpoint: HF names, permuted wq/wk, two shards and an index.</summary>
    private static Dictionary<string, RawTensor> WriteCheckpoint(string dir, LlamaConfig c, bool sharded = true)
    {
        var rng = new Rng(17);
        var meta = new Dictionary<string, RawTensor>();
        var hf = new List<RawTensor>();
        int k = 0;
        foreach (var (name, dims) in LlamaTensorNames.Expected(c))
        {
            var t = RandomTensor(rng, name, k++ % 2 == 0 ? DType.F32 : DType.BF16, dims);
            meta[name] = t;
            var h = t.WithName(HfCheckpoint.ToHfName(name));
            if (name.EndsWith("attention.wq.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NHeads);
            if (name.EndsWith("attention.wk.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NKvHeads);
            hf.Add(h);
        }
        hf.Add(RandomTensor(rng, "model.layers.0.self_attn.rotary_emb.inv_freq", DType.F32, c.HeadDim / 2));

        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama",
            ["hidden_size"] = c.Dim, ["intermediate_size"] = c.HiddenDim, ["num_hidden_layers"] = c.NLayers,
            ["num_attention_heads"] = c.NHeads, ["num_key_value_heads"] = c.NKvHeads, ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.SeqLen, ["rms_norm_eps"] = c.NormEps, ["rope_theta"] = c.RopeTheta,
            ["tie_word_embeddings"] = c.TiedEmbeddings, ["torch_dtype"] = "bfloat16",
        };
        File.WriteAllText(Path.Combine(dir, HfCheckpoint.ConfigFile), JsonSerializer.Serialize(config));
        if (!sharded)
        {
            Safetensors.Write(Path.Combine(dir, HfCheckpoint.SingleFile), hf, new Dictionary<string, string> { ["format"] = "pt" });
            return meta;
        }
        var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
        var map = new Dictionary<string, string>();
        int split = hf.Count / 2;
        Safetensors.Write(Path.Combine(dir, shards[0]), hf.Take(split));
        Safetensors.Write(Path.Combine(dir, shards[1]), hf.Skip(split));
        foreach (var (t, i) in hf.Select((t, i) => (t, i))) map[t.Name] = shards[i < split ? 0 : 1];
        var index = new { metadata = new { total_size = hf.Sum(t => (long)t.Data.Length) }, weight_map = map };
        File.WriteAllText(Path.Combine(dir, HfCheckpoint.IndexFile), JsonSerializer.Serialize(index));
        return meta;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ReadsConfigAndRecoversMetaWeights(bool sharded)
    {
        using var dir = new TempDir();
        var meta = WriteCheckpoint(dir.Path, Tiny, sharded);
        using var file = WeightFile.Open(dir.Path);
        Assert.Equal(WeightFileFormat.HuggingFace, file.Format);
        Assert.Equal(Tiny, file.Config);
        AssertMetaLayout(file, Tiny);
        foreach (var (name, expected) in meta)
        {
            var t = file[name];
            Assert.Equal(expected.DType, t.DType);
            Assert.True(expected.Data.Span.SequenceEqual(t.Data.Span), name);
        }
        if (sharded) Assert.Equal(meta.Values.Sum(t => (long)t.Data.Length) + Tiny.HeadDim / 2 * 4, Convert.ToInt64(file.Metadata["total_size"]));
    }

    [Fact]
    public void KeepsHfNamesAndOrderWhenAsked()
    {
        using var dir = new TempDir();
        var meta = WriteCheckpoint(dir.Path, Tiny);
        using var file = HfCheckpoint.Read(dir.Path, toMeta: false);
        var wq = file["model.layers.1.self_attn.q_proj.weight"];
        Assert.True(HfRopePermutation.Permute(meta[LlamaTensorNames.Wq(1)], Tiny.NHeads).Data.Span.SequenceEqual(wq.Data.Span));
        Assert.True(file.Contains("model.layers.0.self_attn.rotary_emb.inv_freq"));
    }

    [Fact]
    public void ConfigDefaultsFollowTransformers()
    {
        using var dir = new TempDir();
        string path = dir.File("config.json");
        File.WriteAllText(path, """{"hidden_size": 16, "intermediate_size": 40, "num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 100}""");
        var c = HfCheckpoint.ReadConfig(path);
        Assert.Equal(c.NHeads, c.NKvHeads);
        Assert.Equal(1e-6, c.NormEps);
        Assert.Equal(10000.0, c.RopeTheta);
        Assert.False(c.TiedEmbeddings);
        File.WriteAllText(path, """{"hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 100}""");
        AssertThrowsNaming(() => HfCheckpoint.ReadConfig(path), path, "intermediate_size", "missing");
    }

    [Fact]
    public void NameMappingCoversEveryParameter()
    {
        foreach (var (name, _) in LlamaTensorNames.Expected(Tiny))
        {
            string hf = HfCheckpoint.ToHfName(name);
            Assert.NotEqual(name, hf);
            Assert.Equal(name, HfCheckpoint.ToMetaName(hf));
        }
        Assert.Null(HfCheckpoint.ToMetaName("model.layers.3.self_attn.rotary_emb.inv_freq"));
    }

    [Fact]
    public void BrokenCheckpointsNameTheFileAndTensor()
    {
        using (var dir = new TempDir())
        {
            WriteCheckpoint(dir.Path, Tiny);
            string shard = dir.File("model-00002-of-00002.safetensors");
            File.Delete(shard);
            AssertThrowsNaming(() => HfCheckpoint.Read(dir.Path), shard, null, "does not exist");
        }
        using (var dir = new TempDir())
        {
            WriteCheckpoint(dir.Path, Tiny);
            string indexPath = dir.File(HfCheckpoint.IndexFile);
            var index = JsonDocument.Parse(File.ReadAllText(indexPath)).RootElement;
            var map = index.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
            map["model.layers.5.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
            File.WriteAllText(indexPath, JsonSerializer.Serialize(new { weight_map = map }));
            AssertThrowsNaming(() => HfCheckpoint.Read(dir.Path), dir.File("model-00001-of-00002.safetensors"), "model.layers.5.mlp.up_proj.weight", "absent");
        }
        using (var dir = new TempDir())
        {
            WriteCheckpoint(dir.Path, Tiny with { NKvHeads = 4 });
            // config.json says 2 KV heads but k_proj has rows for 4.
            string configPath = dir.File(HfCheckpoint.ConfigFile);
            File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"num_key_value_heads\":4", "\"num_key_value_heads\":2"));
            AssertThrowsNaming(() => HfCheckpoint.Read(dir.Path), dir.Path, "model.layers.0.self_attn.k_proj.weight", "config.json");
        }
    }
}
