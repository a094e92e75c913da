using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>A LoRA policy checkpoint holds its adapters and the reference of its base (path, size, SHA-256), not a
/// copy of the base; every consumer (generate, export, resume, later stages) loads the base it names and refuses a
/// base that is missing or changed.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class LoraCheckpointTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-lora-ckpt-" + Guid.NewGuid().ToString("N"));
    private readonly string _base;

    public LoraCheckpointTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "base"));
        // A private copy of the base, which the error tests change and remove.
        _base = Path.Combine(_dir, "base", "stories260K.bin");
        File.Copy(Assets.Require("models/stories260K.bin"), _base);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static string Tokenizer => Assets.Require("models/tok512.bin");
    private static Device Dev => TestDevices.Native;
    private static readonly string[] Targets = ["wq", "wv", "w1"];

    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error);

    private string Alpaca()
    {
        string path = Path.Combine(_dir, "alpaca.jsonl");
        var rows = File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(6)
            .Select(l => JsonNode.Parse(l)!.AsObject())
            .Select(r => new JsonObject { ["instruction"] = r["prompt"]!.GetValue<string>(), ["output"] = r["response_0"]!.GetValue<string>() }.ToJsonString());
        File.WriteAllText(path, string.Join("\n", rows) + "\n");
        return path;
    }

    private string Config(string stage, string model, JsonObject? lora, int steps = 3)
    {
        var data = stage == "dpo"
            ? WriteText("pku.jsonl", string.Join("\n", File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(6)) + "\n")
            : Alpaca();
        var config = new JsonObject
        {
            ["model"] = model, ["tokenizer"] = Tokenizer, ["data"] = data, ["max_length"] = 160, ["seed"] = 3, ["lora"] = lora,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        };
        return WriteText(stage + ".json", config.ToJsonString());
    }

    private string WriteText(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static JsonObject Lora(bool q8 = true) =>
        new() { ["rank"] = 4, ["alpha"] = 8, ["targets"] = new JsonArray(Targets.Select(t => (JsonNode?)t).ToArray()), ["quantize"] = q8 ? "q8_0" : null };

    private string Sft(string name = "sft", int steps = 3, bool q8 = true)
    {
        string run = Path.Combine(_dir, name);
        Ok(CliHarness.Run("sft", "--config", Config("sft", _base, Lora(q8), steps), "--out", run, "--device", "cpu", "--quiet"));
        return run;
    }

    /// <summary>The trained policy built without the checkpoint loader: the base (quantized to Q8_0 on load when
    /// <paramref name="q8"/>) as training held it, fresh adapters of the same shape, then the adapter values the file holds.</summary>
    private LlamaModel InMemory(string checkpoint, bool q8 = true)
    {
        var model = LlamaLoader.Load(_base, Dev, new LlamaLoadOptions { Quantize = q8 ? DType.Q8_0 : null });
        model.AddLora(4, 8, Targets, new Rng(0));
        var byName = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor, StringComparer.Ordinal);
        using var file = Safetensors.Read(checkpoint);
        using var suspend = TensorScope.Suspend();
        using var noGrad = GradMode.NoGrad();
        foreach (var raw in file.Tensors)
        {
            var target = byName[raw.Name];
            using var src = Tensor.FromArray(Dev, RunFiles.Floats(raw), raw.Dims);
            target.Backend.Copy(src, target);
        }
        Assert.Equal(byName.Keys.Count(n => n.Contains(".lora.", StringComparison.Ordinal)), file.Tensors.Count);
        return model;
    }

    private static float[] Logits(LlamaModel model, int[] ids)
    {
        using var scope = new TensorScope();
        var tokens = Tensor.FromArray(Dev, ids, 1, ids.Length);
        var positions = Tensor.FromArray(Dev, Enumerable.Range(0, ids.Length).ToArray(), 1, ids.Length);
        return model.Logits(model.Forward(tokens, positions)).ToFloatArray();
    }

    private static float[] LogitsOf(string path)
    {
        using var model = LlamaLoader.Load(path, Dev);
        return Logits(model, PromptIds);
    }

    private static int[] PromptIds => TextTokenizer.Load(Tokenizer).Encode("Once upon a time", addBos: true, addEos: false).ToArray();

    [Fact]
    public void ASftCheckpointHoldsTheAdaptersAndTheReferenceOfItsBaseOnly()
    {
        string run = Sft();
        string weights = RunFiles.ModelOf(run);
        Assert.True(new FileInfo(weights).Length * 4 < new FileInfo(_base).Length,
            $"{weights} has {new FileInfo(weights).Length} bytes, the base {new FileInfo(_base).Length}");
        var baseNames = LlamaLoader.Parameters(LlamaLoader.ReadConfig(_base)).Select(p => p.Name).ToHashSet();
        string sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(_base)));
        using (var file = Safetensors.Read(weights))
        {
            Assert.NotEmpty(file.Tensors);
            Assert.All(file.Tensors, t => Assert.DoesNotContain(t.Name, baseNames));
            Assert.All(file.Tensors, t => Assert.Matches(@"\.lora\.[ab]$", t.Name));
            Assert.Equal(_base, file.Metadata["base_model"]);
            Assert.Equal(new FileInfo(_base).Length.ToString(), file.Metadata["base_model_bytes"]);
            Assert.Equal(sha, file.Metadata["base_model_sha256"]);
        }
        // model.json states the same reference.
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(weights)!, "model.json")));
        var reference = manifest.RootElement.GetProperty("base");
        Assert.Equal(_base, reference.GetProperty("path").GetString());
        Assert.Equal(new FileInfo(_base).Length, reference.GetProperty("bytes").GetInt64());
        Assert.Equal(sha, reference.GetProperty("sha256").GetString());

        // Loaded through the checkpoint's base, the policy is the trained one: the same logits, bit for bit, and
        // greedy generation from the run folder gives the tokens of the model built in memory.
        using var expected = InMemory(weights);
        Assert.Equal(Logits(expected, PromptIds), LogitsOf(weights));
        using (var loaded = LlamaLoader.Load(weights, Dev))
            foreach (var name in new[] { "layers.0.attention.wq.weight", "layers.2.attention.wk.weight" })
            {
                var held = loaded.NamedParameters().Single(p => p.Name == name).Tensor;
                Assert.Equal(DType.Q8_0, held.DType);
                Assert.Equal(expected.NamedParameters().Single(p => p.Name == name).Tensor.ToBytes(), held.ToBytes());
            }
        var gen = CliHarness.Run("generate", "--model", run, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--temperature", "0",
            "--device", "cpu", "--json");
        Ok(gen);
        using var json = JsonDocument.Parse(gen.Out);
        var ids = json.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var tokenizer = TextTokenizer.Load(Tokenizer);
        var want = Generator.Generate(expected, PromptIds, 8, new SamplingOptions { Temperature = 0 }, tokenizer.EosId);
        Assert.Equal(want, ids);
        Assert.NotEmpty(ids);
    }

    [Fact]
    public void AnAdaptersOnlyCheckpointResumesBitIdentically()
    {
        string whole = Sft("whole");
        string split = Path.Combine(_dir, "split");
        string config = Config("sft", _base, Lora());
        Ok(CliHarness.Run("sft", "--config", config, "--set", "stop_after_steps=1", "--out", split, "--device", "cpu", "--quiet"));
        Ok(CliHarness.Run("sft", "--resume", split, "--device", "cpu", "--quiet"));
        Assert.Equal(File.ReadAllLines(Path.Combine(whole, "metrics.jsonl")), File.ReadAllLines(Path.Combine(split, "metrics.jsonl")));
        Assert.Equal(File.ReadAllBytes(RunFiles.ModelOf(whole)), File.ReadAllBytes(RunFiles.ModelOf(split)));
        Assert.EndsWith(Path.Combine("checkpoint-3", "model.safetensors"), RunFiles.ModelOf(split));
    }

    [Fact]
    public void ResumingOnAChangedBaseIsRefused()
    {
        string split = Path.Combine(_dir, "split");
        Ok(CliHarness.Run("sft", "--config", Config("sft", _base, Lora(), steps: 2), "--set", "stop_after_steps=1", "--out", split,
            "--device", "cpu", "--quiet"));
        byte[] changed = File.ReadAllBytes(_base);
        changed[^1] ^= 1;
        File.WriteAllBytes(_base, changed);
        var r = CliHarness.Run("sft", "--resume", split, "--device", "cpu", "--quiet");
        Assert.Equal(1, r.Code);
        Assert.Contains(Path.Combine(split, "checkpoint-1", "model.safetensors"), r.Error);
        Assert.Contains(_base, r.Error);
        Assert.Contains("SHA-256", r.Error);
        Assert.False(Directory.Exists(Path.Combine(split, "checkpoint-2")));
    }

    [Fact]
    public void MergedExportOfAnAdaptersOnlyCheckpointEqualsThatOfTheWholeModel()
    {
        // An F32 base: the merged model then computes what the adapter model does, up to rounding.
        string run = Sft(q8: false);
        // The same policy written whole (base and adapters in one file), as checkpoints were before.
        string full = Path.Combine(_dir, "whole", "model.safetensors");
        using (var model = InMemory(RunFiles.ModelOf(run), q8: false)) LlamaCheckpoint.Save(model, full);
        string fromRun = Path.Combine(_dir, "run.gguf"), fromFull = Path.Combine(_dir, "full.gguf");
        Ok(CliHarness.Run("export", "--model", run, "--format", "gguf", "--merge-lora", "--out", fromRun));
        Ok(CliHarness.Run("export", "--model", full, "--format", "gguf", "--merge-lora", "--tokenizer", Tokenizer, "--out", fromFull));
        var merged = LogitsOf(fromRun);
        Assert.Equal(LogitsOf(fromFull), merged);
        var adapters = LogitsOf(RunFiles.ModelOf(run));
        for (int i = 0; i < merged.Length; i++) Assert.True(Math.Abs(adapters[i] - merged[i]) < 1e-4, $"logit {i}: {adapters[i]} vs {merged[i]}");
        Assert.NotEqual(LogitsOf(_base), merged);   // the adapters trained
        // Without --merge-lora the adapters-only checkpoint is refused like any model with adapters.
        var refused = CliHarness.Run("export", "--model", run, "--format", "hf", "--out", Path.Combine(_dir, "hf"));
        Assert.Equal(1, refused.Code);
        Assert.Contains("--merge-lora", refused.Error);
    }

    [Fact]
    public void ALaterStageContinuingTheAdaptersNamesTheOriginalBase()
    {
        string sft = Sft(steps: 2);
        string dpo = Path.Combine(_dir, "dpo");
        Ok(CliHarness.Run("dpo", "--config", Config("dpo", sft, lora: null, steps: 2), "--out", dpo, "--device", "cpu", "--quiet"));
        using var file = Safetensors.Read(RunFiles.ModelOf(dpo));
        Assert.All(file.Tensors, t => Assert.Matches(@"\.lora\.[ab]$", t.Name));
        Assert.Equal(_base, file.Metadata["base_model"]);
        // The adapters moved on from the SFT ones.
        using var before = Safetensors.Read(RunFiles.ModelOf(sft));
        Assert.NotEqual(RunFiles.Floats(before["layers.0.attention.wq.lora.b"]), RunFiles.Floats(file["layers.0.attention.wq.lora.b"]));
        var gen = CliHarness.Run("generate", "--model", dpo, "--prompt", "Once upon a time", "--max-new-tokens", "4", "--temperature", "0", "--device", "cpu");
        Ok(gen);
    }

    [Fact]
    public void AChangedOrMissingBaseIsRefusedNamingTheCheckpointAndTheBase()
    {
        string run = Sft(steps: 1);
        string weights = RunFiles.ModelOf(run);
        string[] generate = ["generate", "--model", run, "--prompt", "Once", "--max-new-tokens", "2", "--device", "cpu"];

        // Same size, one byte different: another file.
        byte[] original = File.ReadAllBytes(_base);
        byte[] changed = (byte[])original.Clone();
        changed[^1] ^= 1;
        File.WriteAllBytes(_base, changed);
        var r = CliHarness.Run(generate);
        Assert.Equal(1, r.Code);
        Assert.Contains(weights, r.Error);
        Assert.Contains(_base, r.Error);
        Assert.Contains("SHA-256", r.Error);
        Assert.DoesNotContain("   at ", r.Error);
        var e = Assert.Throws<LoraBaseException>(() => LlamaLoader.Load(weights, Dev));
        Assert.Equal(_base, e.BasePath);
        Assert.Equal(weights, e.FilePath);

        File.Delete(_base);
        foreach (var args in new[] { generate, ["export", "--model", run, "--format", "gguf", "--merge-lora", "--out", Path.Combine(_dir, "x.gguf")] })
        {
            var missing = CliHarness.Run(args);
            Assert.Equal(1, missing.Code);
            Assert.Contains(weights, missing.Error);
            Assert.Contains($"{_base} is missing", missing.Error);
        }
        Assert.Throws<LoraBaseException>(() => LlamaLoader.Load(weights, Dev));

        // The base back in place: the checkpoint loads again.
        File.WriteAllBytes(_base, original);
        Ok(CliHarness.Run(generate));
    }
}
