using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tests.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Golden.GoldenSupport;

namespace SafeRlhf.Llama.Tests.Golden;

/// <summary>LlamaLoader on every format and LlamaCheckpoint save/load round trips.</summary>
public sealed class LlamaLoaderTests
{
    private static readonly Device Dev = TestDevices.Native;

    [Fact]
    public void Llama2cSharedClassifierBecomesTiedEmbeddings()
    {
        using var file = WeightFile.Open(Stories260K);
        using var model = LlamaLoader.FromWeightFile(file, TestDevices.Reference, new LlamaLoadOptions { ComputeType = DType.F64 });
        Assert.True(model.Config.TiedEmbeddings);
        Assert.Null(model.Output);
        Assert.Equal(file.Config!.Dim, model.Config.Dim);
        foreach (var (name, tensor) in model.NamedParameters())
        {
            Assert.Equal(DType.F64, tensor.DType);
            Assert.Equal(file[name].ToDoubleArray(), tensor.ToDoubleArray());
        }
    }

    [Fact]
    public void SavedAndLoadedCheckpointGivesBitIdenticalLogits()
    {
        using var dir = new TempDir();
        string path = dir.File("sub/stories.safetensors");
        using var original = LoadStories(Dev);
        LlamaCheckpoint.Save(original, path, new Dictionary<string, string> { ["step"] = "42", ["note"] = "round trip" });
        using var loaded = LlamaCheckpoint.Load(path, Dev);
        Assert.Equal(original.Config, loaded.Config);
        Assert.Equal(Logits(original, Prompt), Logits(loaded, Prompt));
        var metadata = LlamaCheckpoint.ReadMetadata(path);
        Assert.Equal("42", metadata["step"]);
        Assert.Equal("round trip", metadata["note"]);
        Assert.DoesNotContain("llama_config", metadata.Keys);
        // LlamaLoader reads the same file through WeightFile.Open.
        using var viaLoader = LlamaLoader.Load(path, Dev);
        Assert.Equal(Logits(original, Prompt), Logits(viaLoader, Prompt));
        Assert.Throws<ArgumentException>(() => LlamaCheckpoint.Save(original, path, new Dictionary<string, string> { ["llama_config"] = "x" }));
    }

    /// <summary>A random fp32 model (dim 64, 2 layers, GQA, vocab 40) saved as dir/dense.safetensors; returns its config.</summary>
    private static LlamaConfig SaveSmallDense(TempDir dir, ulong seed)
    {
        var config = new LlamaConfig { Dim = 64, HiddenDim = 96, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 40, SeqLen = 32 };
        using var dense = LlamaModel.Create(config, Dev, new Rng(seed));
        LlamaCheckpoint.Save(dense, dir.File("dense.safetensors"));
        return config;
    }

    /// <summary>InterleaveRows stores the frozen Q4_0 matrices whose rows come in 16s as Q4_0x16 (the classifier's 40 rows
    /// stay Q4_0): the same logits up to the fp32 order of the block sums, and the same greedy tokens through the KV cache.</summary>
    [Fact]
    public void InterleavedRowsGiveTheFileLayoutsLogitsAndTokens()
    {
        using var dir = new TempDir();
        SaveSmallDense(dir, seed: 8);
        using var file = LlamaLoader.Load(dir.File("dense.safetensors"), Dev, new LlamaLoadOptions { Quantize = DType.Q4_0 });
        using var packed = LlamaLoader.Load(dir.File("dense.safetensors"), Dev, new LlamaLoadOptions { Quantize = DType.Q4_0, InterleaveRows = true });
        Assert.Equal(DType.Q4_0x16, packed.Layers[1].W2.Weight.DType);
        Assert.Equal(DType.Q4_0x16, packed.Layers[0].Wk.Weight.DType);
        Assert.Equal(DType.Q4_0, packed.Output!.Weight.DType);
        int[] tokens = [1, 7, 3, 39, 12];
        var expected = Logits(file, tokens);
        var actual = Logits(packed, tokens);
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * scale, $"logit {i}: {actual[i]} vs {expected[i]}");
        var greedy = new SamplingOptions { Temperature = 0 };
        Assert.Equal(Generator.Generate(file, tokens, 12, greedy, stopId: -1), Generator.Generate(packed, tokens, 12, greedy, stopId: -1));
    }

    [Fact]
    public void QuantizedWeightsAndLoraAdaptersRoundTrip()
    {
        using var dir = new TempDir();
        var config = SaveSmallDense(dir, seed: 5);
        using var model = LlamaLoader.Load(dir.File("dense.safetensors"), Dev, new LlamaLoadOptions { Quantize = DType.Q4_0 });
        Assert.Equal(DType.Q4_0, model.Layers[1].W2.Weight.DType);
        Assert.Equal(DType.Q4_0, model.Output!.Weight.DType);
        Assert.Equal(DType.F32, model.TokEmbeddings.Weight.DType);
        model.AddLora(4, 8, ["wq", "wv"], new Rng(6));
        using (GradMode.NoGrad())
            foreach (var (_, p) in model.TrainableParameters()) p.Backend.Fill(p, 0.05);

        LlamaCheckpoint.Save(model, dir.File("lora.safetensors"));
        using var loaded = LlamaCheckpoint.Load(dir.File("lora.safetensors"), Dev);
        Assert.Equal(model.NamedParameters().Select(p => (p.Name, p.Tensor.DType, p.Tensor.RequiresGrad)),
            loaded.NamedParameters().Select(p => (p.Name, p.Tensor.DType, p.Tensor.RequiresGrad)));
        var mine = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor);
        foreach (var (name, t) in loaded.NamedParameters()) Assert.Equal(mine[name].ToBytes(), t.ToBytes());
        int[] tokens = [1, 7, 3, 39, 12];
        Assert.Equal(Logits(model, tokens), Logits(loaded, tokens));
        loaded.SetLoraEnabled(false);
        Assert.NotEqual(Logits(model, tokens), Logits(loaded, tokens));

        // The general loader (what generate and the stage commands call) keeps the adapters too, and refuses to
        // re-quantize or convert the base under them.
        using var general = LlamaLoader.Load(dir.File("lora.safetensors"), Dev, LlamaLoadOptions.FrozenStorage);
        Assert.Equal(Logits(model, tokens), Logits(general, tokens));
        var q = Assert.Throws<WeightFormatException>(() => LlamaLoader.Load(dir.File("lora.safetensors"), Dev, new LlamaLoadOptions { Quantize = DType.Q8_0 }));
        Assert.Contains("LoRA adapters", q.Message);
        Assert.Throws<WeightFormatException>(() => LlamaLoader.Load(dir.File("lora.safetensors"), Dev, new LlamaLoadOptions { ComputeType = DType.F64 }));
    }

    [Fact]
    public void HuggingFaceFolderGivesTheLlama2cLogits()
    {
        using var dir = new TempDir();
        using (var file = WeightFile.Open(Stories260K))
        {
            var c = file.Config!;
            var hf = file.Tensors.Select(t =>
            {
                var h = t.WithName(HfCheckpoint.ToHfName(t.Name));
                if (t.Name.EndsWith("attention.wq.weight", StringComparison.Ordinal)) return HfRopePermutation.Permute(h, c.NHeads);
                if (t.Name.EndsWith("attention.wk.weight", StringComparison.Ordinal)) return HfRopePermutation.Permute(h, c.NKvHeads);
                return h;
            }).ToList();
            Safetensors.Write(Path.Combine(dir.Path, HfCheckpoint.SingleFile), hf);
            File.WriteAllText(Path.Combine(dir.Path, HfCheckpoint.ConfigFile), JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["model_type"] = "llama", ["hidden_size"] = c.Dim, ["intermediate_size"] = c.HiddenDim, ["num_hidden_layers"] = c.NLayers,
                ["num_attention_heads"] = c.NHeads, ["num_key_value_heads"] = c.NKvHeads, ["vocab_size"] = c.VocabSize,
                ["max_position_embeddings"] = c.SeqLen, ["rms_norm_eps"] = c.NormEps, ["tie_word_embeddings"] = true,
            }));
        }
        using var fromHf = LlamaLoader.Load(dir.Path, Dev);
        using var fromBin = LoadStories(Dev);
        Assert.Equal(fromBin.Config with { SeqLen = fromHf.Config.SeqLen }, fromHf.Config);
        Assert.Equal(Logits(fromBin, Prompt), Logits(fromHf, Prompt));
    }

    [Fact]
    public void MissingOrMisshapenTensorsNameTheFileAndTheTensor()
    {
        using var dir = new TempDir();
        string good = dir.File("good.safetensors");
        using (var model = LoadStories(Dev)) LlamaCheckpoint.Save(model, good);
        var metadata = LlamaCheckpointHeader(good);
        using var file = WeightFile.Open(good);

        string wk = LlamaTensorNames.Wk(3);
        string misshapen = dir.File("misshapen.safetensors");
        var raw = file[wk];
        Safetensors.Write(misshapen, file.Tensors.Select(t => t.Name == wk ? new RawTensor(wk, t.DType, [t.Dims[1], t.Dims[0]], t.Data) : t), metadata);
        var e = Assert.Throws<WeightFormatException>(() => LlamaLoader.Load(misshapen, Dev));
        Assert.Equal(wk, e.TensorName);
        Assert.Contains(misshapen, e.Message);
        Assert.Contains(wk, e.Message);

        string missing = dir.File("missing.safetensors");
        Safetensors.Write(missing, file.Tensors.Where(t => t.Name != LlamaTensorNames.Norm), metadata);
        e = Assert.Throws<WeightFormatException>(() => LlamaCheckpoint.Load(missing, Dev));
        Assert.Equal(LlamaTensorNames.Norm, e.TensorName);
        Assert.Contains(missing, e.Message);

        string plain = dir.File("plain.safetensors");
        Safetensors.Write(plain, file.Tensors);
        e = Assert.Throws<WeightFormatException>(() => LlamaLoader.Load(plain, Dev));
        Assert.Contains(plain, e.Message);

        string absent = dir.File("absent.bin");
        var notFound = Assert.Throws<FileNotFoundException>(() => LlamaLoader.Load(absent, Dev));
        Assert.Contains(absent, notFound.Message);
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new LlamaLoadOptions { ComputeType = DType.F16 }.Validate());
        Assert.Throws<ArgumentException>(() => new LlamaLoadOptions { Quantize = DType.F16 }.Validate());
        Assert.Throws<ArgumentException>(() => new LlamaLoadOptions { ComputeType = DType.F64, Quantize = DType.Q8_0 }.Validate());
        Assert.Throws<ArgumentException>(() => new LlamaLoadOptions { KeepStorage = new HashSet<DType> { DType.F32 } }.Validate());
    }

    private static Dictionary<string, string> LlamaCheckpointHeader(string path)
    {
        using var file = WeightFile.Open(path);
        return file.Metadata.ToDictionary(p => p.Key, p => (string)p.Value);
    }
}
