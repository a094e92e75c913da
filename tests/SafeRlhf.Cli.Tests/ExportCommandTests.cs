using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>`saferlhf export`: exported Hugging Face folders and GGUF files reload with the logits of the model they
/// came from, and carry its vocabulary.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class ExportCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-export-" + Guid.NewGuid().ToString("N"));

    public ExportCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static string Model => Assets.Require("models/stories260K.bin");
    private static Device Dev => TestDevices.Native;

    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error);

    /// <summary>The prompt and its ids as llama2.c's run.c tokenized them.</summary>
    private static (string Prompt, int[] Ids) GoldenPrompt()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Assets.Glob("golden", "stories260K_llama2c_*.json")[0]));
        var root = doc.RootElement;
        return (root.GetProperty("prompt").GetString()!, root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    private static float[] Logits(LlamaModel model, int[] ids)
    {
        using var scope = new TensorScope();
        var tokens = Tensor.FromArray(Dev, ids, 1, ids.Length);
        var positions = Tensor.FromArray(Dev, Enumerable.Range(0, ids.Length).ToArray(), 1, ids.Length);
        return model.Logits(model.Forward(tokens, positions)).ToFloatArray();
    }

    private static float[] LogitsOf(string path, LlamaLoadOptions? options = null)
    {
        using var model = LlamaLoader.Load(path, Dev, options);
        return Logits(model, GoldenPrompt().Ids);
    }

    [Fact]
    public void HuggingFaceExportReloadsWithIdenticalLogitsAndHfRowOrder()
    {
        string hf = Path.Combine(_dir, "hf");
        Ok(CliHarness.Run("export", "--model", Model, "--format", "hf", "--out", hf));

        Assert.Equal(LogitsOf(Model), LogitsOf(hf));
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(hf, "config.json")));
        var c = config.RootElement;
        var source = LlamaLoader.ReadConfig(Model);
        Assert.Equal("LlamaForCausalLM", c.GetProperty("architectures")[0].GetString());
        Assert.Equal(source.Dim, c.GetProperty("hidden_size").GetInt32());
        Assert.Equal(source.NKvHeads, c.GetProperty("num_key_value_heads").GetInt32());
        Assert.Equal(source.TiedEmbeddings, c.GetProperty("tie_word_embeddings").GetBoolean());
        Assert.True(File.Exists(Path.Combine(hf, "generation_config.json")));

        // HF's conversion script views W as [heads, headDim/2, 2, cols] and swaps the middle axes.
        using var raw = HfCheckpoint.Read(hf, toMeta: false);
        using var meta = WeightFile.Open(Model);
        var wk = meta[LlamaTensorNames.Wk(0)].ToSingleArray();
        var kProj = raw["model.layers.0.self_attn.k_proj.weight"].ToSingleArray();
        int cols = source.Dim, half = source.HeadDim / 2;
        for (int h = 0; h < source.NKvHeads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    for (int col = 0; col < cols; col++)
                        Assert.Equal(wk[((h * half + i) * 2 + j) * cols + col], kProj[((h * 2 + j) * half + i) * cols + col]);

        // The vocabulary as a SentencePiece model tokenizes like llama2.c did.
        var (prompt, ids) = GoldenPrompt();
        var tokenizer = SentencePieceBpeTokenizer.Load(Path.Combine(hf, "tokenizer.model"));
        Assert.Equal(ids, tokenizer.Encode(prompt, addBos: true, addEos: false));
    }

    [Fact]
    public void GgufExportReloadsWithIdenticalLogitsAndItsOwnVocabulary()
    {
        string gguf = Path.Combine(_dir, "model.gguf");
        Ok(CliHarness.Run("export", "--model", Model, "--format", "gguf", "--out", gguf));

        Assert.Equal(LogitsOf(Model), LogitsOf(gguf));
        using var file = GgufReader.Read(gguf);
        Assert.Equal("llama", file.Metadata["general.architecture"]);
        Assert.Equal("llama", file.Metadata["tokenizer.ggml.model"]);
        Assert.All(file.Tensors, t => Assert.Equal(DType.F32, t.DType));
        var (prompt, ids) = GoldenPrompt();
        Assert.Equal(ids, SentencePieceBpeTokenizer.FromGguf(file).Encode(prompt, addBos: true, addEos: false));
    }

    [Fact]
    public void AGgufWithItsOwnVocabularyExportsToHfAndBack()
    {
        string source = Assets.Require("models/llama-2-tiny-random.gguf");
        string hf = Path.Combine(_dir, "hf-from-gguf"), gguf = Path.Combine(_dir, "back.gguf");
        Ok(CliHarness.Run("export", "--model", source, "--format", "hf", "--out", hf));
        Ok(CliHarness.Run("export", "--model", hf, "--format", "gguf", "--out", gguf));

        var expected = LogitsOf(source);
        Assert.Equal(expected, LogitsOf(hf));
        Assert.Equal(expected, LogitsOf(gguf));
        // The vocabulary travels: GGUF metadata → tokenizer.model → GGUF metadata.
        using var original = GgufReader.Read(source);
        using var back = GgufReader.Read(gguf);
        var sentences = new[] { "Hello world, how are you?", " leading space and ünïcödé 😀" };
        var fromGguf = SentencePieceBpeTokenizer.FromGguf(original);
        var fromHf = SentencePieceBpeTokenizer.Load(Path.Combine(hf, "tokenizer.model"));
        var fromBack = SentencePieceBpeTokenizer.FromGguf(back);
        foreach (var text in sentences)
        {
            var ids = fromGguf.Encode(text, addBos: true, addEos: false);
            Assert.Equal(ids, fromHf.Encode(text, addBos: true, addEos: false));
            Assert.Equal(ids, fromBack.Encode(text, addBos: true, addEos: false));
        }
    }

    [Theory]
    [InlineData("q8_0", DType.Q8_0)]
    [InlineData("q4_0", DType.Q4_0)]
    public void QuantizedGgufMatchesTheSameQuantizationInMemory(string option, DType type)
    {
        string gguf = Path.Combine(_dir, option + ".gguf");
        Ok(CliHarness.Run("export", "--model", Model, "--format", "gguf", "--quantize", option, "--out", gguf));

        var inMemory = LogitsOf(Model, new LlamaLoadOptions { Quantize = type });
        Assert.Equal(inMemory, LogitsOf(gguf, LlamaLoadOptions.FrozenStorage));
        using var file = GgufReader.Read(gguf);
        Assert.Equal(type, file[LlamaTensorNames.Wq(0)].DType);
        // Rows that are not whole blocks (w2: hidden 172) stay F32, as the loader leaves them.
        Assert.Equal(LlamaLoader.ReadConfig(Model).HiddenDim % 32 == 0 ? type : DType.F32, file[LlamaTensorNames.W2(0)].DType);
        Assert.Equal(DType.F32, file[LlamaTensorNames.TokEmbeddings].DType);
        Assert.Equal(DType.F32, file[LlamaTensorNames.Norm].DType);
    }

    [Fact]
    public void Q4KGgufHoldsTheEncodedBlocksAndReloadsAsTheirDequantizedValues()
    {
        // llama-110m's widths (768, 2048) are whole Q4_K super-blocks; one layer keeps it small.
        var init = CliHarness.Run("init", "--preset", "llama-110m", "--layers", "1", "--vocab", "512", "--seed", "4",
            "--out", Path.Combine(_dir, "init"), "--quiet");
        Ok(init);
        string model = init.Out.Trim();
        string gguf = Path.Combine(_dir, "q4_k.gguf");
        Ok(CliHarness.Run("export", "--model", model, "--format", "gguf", "--quantize", "q4_k", "--tokenizer",
            Assets.Require("models/tok512.bin"), "--out", gguf));

        // The expected model: every linear matrix encoded as Q4_K super-blocks and decoded by a scalar model of the
        // block layout; norms and the embedding as they are.
        using var source = LlamaLoader.Load(model, Dev);
        var values = source.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.ToFloatArray());
        var tensors = new Dictionary<string, Tensor>();
        var blocksOf = new Dictionary<string, byte[]>();
        foreach (var (name, dims, isLinear) in LlamaLoader.Parameters(source.Config))
        {
            float[] v = values[name];
            if (isLinear)
            {
                Assert.Equal(0, dims[1] % 256);
                var blocks = new byte[WeightEncoder.ByteCount(DType.Q4_K, v.Length)];
                KQuantEncoder.QuantizeRow(DType.Q4_K, v, blocks);
                blocksOf[name] = blocks;
                v = DecodeQ4K(blocks);
            }
            tensors[name] = Tensor.FromArray(Dev, v, dims);
        }
        using var expected = LlamaModel.FromTensors(source.Config, Dev, tensors);
        int[] ids = [1, 13, 400, 77, 5, 260];
        using (var reloaded = LlamaLoader.Load(gguf, Dev)) Assert.Equal(Logits(expected, ids), Logits(reloaded, ids));

        using var file = GgufReader.Read(gguf);
        Assert.Equal(14u, Convert.ToUInt32(file.Metadata["general.file_type"]));
        foreach (var (name, blocks) in blocksOf)
        {
            Assert.Equal(DType.Q4_K, file[name].DType);
            Assert.Equal(blocks, file[name].Data.ToArray());
        }
        Assert.Equal(DType.F32, file[LlamaTensorNames.TokEmbeddings].DType);
        Assert.Equal(DType.F32, file[LlamaTensorNames.Norm].DType);

        // Rows that are not whole super-blocks: stories260K's dim-64 rows fall back to Q8_0, its 172-long w2 rows stay F32.
        string small = Path.Combine(_dir, "small-q4_k.gguf");
        Ok(CliHarness.Run("export", "--model", Model, "--format", "gguf", "--quantize", "q4_k", "--out", small));
        using var smallFile = GgufReader.Read(small);
        Assert.Equal(DType.Q8_0, smallFile[LlamaTensorNames.Wq(0)].DType);
        Assert.Equal(DType.F32, smallFile[LlamaTensorNames.W2(0)].DType);
    }

    /// <summary>Q4_K super-blocks (144 bytes per 256 weights) decoded one weight at a time from ggml's layout: F16 d
    /// at 0, F16 dmin at 2, twelve bytes of 6-bit sub-block scales and mins at 4, 128 bytes of nibbles at 16. Weight
    /// e = 64c + 32h + l is nibble h of qs[32c + l], in sub-block s = e / 32: x = d·scale(s)·q − dmin·min(s).</summary>
    private static float[] DecodeQ4K(byte[] blocks)
    {
        const int bytes = 144;
        var result = new float[blocks.Length / bytes * 256];
        for (int b = 0; b < blocks.Length / bytes; b++)
        {
            var blk = blocks.AsSpan(b * bytes, bytes);
            float d = (float)BitConverter.UInt16BitsToHalf((ushort)(blk[0] | blk[1] << 8));
            float dmin = (float)BitConverter.UInt16BitsToHalf((ushort)(blk[2] | blk[3] << 8));
            var scales = blk.Slice(4, 12);
            for (int e = 0; e < 256; e++)
            {
                int c = e / 64, h = e % 64 / 32, l = e % 32, s = e / 32;
                int q = (blk[16 + 32 * c + l] >> (4 * h)) & 0xF;
                int sc = s < 4 ? scales[s] & 63 : (scales[s + 4] & 0xF) | (scales[s - 4] >> 6) << 4;
                int mn = s < 4 ? scales[s + 4] & 63 : (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
                float step = d * sc, offset = dmin * mn;
                result[b * 256 + e] = step * q - offset;
            }
        }
        return result;
    }

    [Fact]
    public void LoraCheckpointNeedsMergeAndMergedLogitsMatchTheAdapterModel()
    {
        string run = Train("sft", Alpaca(), new JsonObject { ["rank"] = 4, ["alpha"] = 8, ["targets"] = new JsonArray("wq", "wv", "w1") });
        string gguf = Path.Combine(_dir, "merged.gguf");

        var refused = CliHarness.Run("export", "--model", run, "--format", "gguf", "--out", gguf);
        Assert.Equal(1, refused.Code);
        Assert.Contains("--merge-lora", refused.Error);
        Assert.False(File.Exists(gguf));

        Ok(CliHarness.Run("export", "--model", run, "--format", "gguf", "--merge-lora", "--out", gguf));
        var withAdapters = LogitsOf(ModelLocator.Resolve(run).WeightPath);
        var merged = LogitsOf(gguf);
        Assert.Equal(withAdapters.Length, merged.Length);
        for (int i = 0; i < merged.Length; i++) Assert.True(Math.Abs(withAdapters[i] - merged[i]) < 1e-4, $"logit {i}: {withAdapters[i]} vs {merged[i]}");
        // Training moved the adapters: the merged model is not the base.
        Assert.NotEqual(LogitsOf(Model), merged);
    }

    [Fact]
    public void ScoreModelsAndQuantizedHfAreRefusedByName()
    {
        string run = Train("reward", PkuData(4), lora: null);
        var score = CliHarness.Run("export", "--model", run, "--format", "hf", "--out", Path.Combine(_dir, "rm"));
        Assert.Equal(1, score.Code);
        Assert.Contains("score model", score.Error);

        var hfQuant = CliHarness.Run("export", "--model", Model, "--format", "hf", "--quantize", "q8_0", "--out", Path.Combine(_dir, "q"));
        Assert.Equal(1, hfQuant.Code);
        Assert.Contains("--quantize", hfQuant.Error);
    }

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string Alpaca() => Write("alpaca.jsonl", string.Join("\n",
        """{"instruction": "Tell a story about a cat.", "output": "Once upon a time there was a cat named Tom."}""",
        """{"instruction": "What did Lily see?", "output": "Lily saw a big red ball and a happy dog."}""") + "\n");

    private string PkuData(int count) => Write("pku.jsonl",
        string.Join("\n", File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(count)) + "\n");

    private string Train(string stage, string data, JsonObject? lora)
    {
        var config = new JsonObject
        {
            ["model"] = Model, ["data"] = data, ["max_length"] = 96, ["seed"] = 3, ["lora"] = lora,
            ["train"] = new JsonObject { ["steps"] = 2, ["batch_size"] = 2, ["lr"] = 5e-2, ["warmup_ratio"] = 0.0 },
        };
        string run = Path.Combine(_dir, stage);
        Ok(CliHarness.Run(stage, "--config", Write(stage + ".json", config.ToJsonString()), "--out", run, "--device", "cpu", "--quiet"));
        return run;
    }
}
