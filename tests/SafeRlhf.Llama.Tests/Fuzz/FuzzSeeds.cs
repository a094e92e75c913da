using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests.Fuzz;

/// <summary>Seed files for the readers that have no file of their own in the shared assets, built once per test run
/// from the real stories260K weights: a Hugging Face folder (config.json, an index and two shards) and a checkpoint
/// written by <see cref="LlamaCheckpoint"/>.</summary>
internal static class FuzzSeeds
{
    private static readonly Lazy<string> s_folder = new(Build);

    /// <summary>The folder holding "hf/" (sharded Hugging Face checkpoint) and "checkpoint.safetensors".</summary>
    public static string Folder => s_folder.Value;

    public static string HfFolder => Path.Combine(Folder, "hf");

    public static string HfFile(string name) => Path.Combine(HfFolder, name);

    public static string Checkpoint => Path.Combine(Folder, "checkpoint.safetensors");

    public const string Shard0 = "model-00001-of-00002.safetensors";
    public const string Shard1 = "model-00002-of-00002.safetensors";

    private static string Build()
    {
        string root = Path.Combine(Path.GetTempPath(), $"saferlhf-fuzz-seeds-{Guid.NewGuid():N}");
        string hf = Path.Combine(root, "hf");
        Directory.CreateDirectory(hf);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (IOException) { }
        };
        string stories = Assets.Require("models/stories260K.bin");
        using (var model = LlamaLoader.Load(stories, TestDevices.Native)) LlamaCheckpoint.Save(model, Path.Combine(root, "checkpoint.safetensors"));

        using var file = WeightFile.Open(stories);
        var c = file.Config!;
        var tensors = new List<RawTensor>();
        foreach (var t in file.Tensors)
        {
            var h = t.WithName(HfCheckpoint.ToHfName(t.Name));
            if (t.Name.EndsWith("attention.wq.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NHeads);
            if (t.Name.EndsWith("attention.wk.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NKvHeads);
            tensors.Add(h);
        }
        int split = tensors.Count / 2;
        Safetensors.Write(Path.Combine(hf, Shard0), tensors.Take(split));
        Safetensors.Write(Path.Combine(hf, Shard1), tensors.Skip(split));
        var map = tensors.Select((t, i) => (t.Name, Shard: i < split ? Shard0 : Shard1)).ToDictionary(p => p.Name, p => p.Shard);
        File.WriteAllText(Path.Combine(hf, HfCheckpoint.IndexFile), JsonSerializer.Serialize(new
        {
            metadata = new { total_size = tensors.Sum(t => (long)t.Data.Length) },
            weight_map = map,
        }));
        File.WriteAllText(Path.Combine(hf, HfCheckpoint.ConfigFile), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama",
            ["hidden_size"] = c.Dim, ["intermediate_size"] = c.HiddenDim, ["num_hidden_layers"] = c.NLayers,
            ["num_attention_heads"] = c.NHeads, ["num_key_value_heads"] = c.NKvHeads, ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.SeqLen, ["rms_norm_eps"] = c.NormEps, ["rope_theta"] = c.RopeTheta,
            ["tie_word_embeddings"] = c.TiedEmbeddings,
        }));
        return root;
    }
}
