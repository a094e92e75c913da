using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>The `lora` block of the stage and RL commands: only adapters (and score heads) train, the base stays
/// frozen and, with `quantize`, quantized; checkpoints resume bit-identically; adapter models load everywhere.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class LoraCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-lora-" + Guid.NewGuid().ToString("N"));

    public LoraCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static (int Code, string Out, string Error) Cli(params string[] args) => CliHarness.Run(args);
    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error);

    private static string Model => Assets.Require("models/stories260K.bin");
    private static string Tokenizer => Assets.Require("models/tok512.bin");

    private static JsonObject Lora(string? quantize) => new()
    {
        ["rank"] = 4, ["alpha"] = 8, ["targets"] = new JsonArray("wq", "wv", "w1"), ["quantize"] = quantize,
    };

    private string Write(string name, JsonNode json)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    private string PkuData(int count)
    {
        string path = Path.Combine(_dir, "pku.jsonl");
        File.WriteAllText(path, string.Join("\n", File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(count)) + "\n");
        return path;
    }

    private string Stage(string stage, string data, JsonObject? lora, int steps = 2, string? model = null)
    {
        var config = new JsonObject
        {
            ["model"] = model ?? Model, ["tokenizer"] = Tokenizer, ["data"] = data, ["max_length"] = 160, ["seed"] = 3, ["lora"] = lora,
            ["train"] = new JsonObject { ["steps"] = steps, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        };
        string run = Path.Combine(_dir, stage + (model is null ? "" : "-" + Path.GetFileName(model)));
        Ok(Cli(stage, "--config", Write(stage + ".json", config), "--out", run, "--device", "cpu", "--quiet"));
        return run;
    }

    /// <summary>The Q8_0 blocks of the base weight <paramref name="name"/> as the original model quantized on load holds them.</summary>
    private static byte[] QuantizedOriginal(string name)
    {
        using var original = LlamaLoader.Load(Model, TestDevices.Native, new LlamaLoadOptions { Quantize = DType.Q8_0 });
        var weight = original.NamedParameters().Single(p => p.Name == name).Tensor;
        Assert.Equal(DType.Q8_0, weight.DType);
        return weight.ToBytes();
    }

    /// <summary>A loaded model's parameter that must be a frozen Q8_0 matrix, kept as stored (its blocks, not a dequantized copy).</summary>
    private static byte[] Q8(SafeRlhf.Llama.LlamaModel model, string name)
    {
        var weight = model.NamedParameters().Single(p => p.Name == name).Tensor;
        Assert.Equal(DType.Q8_0, weight.DType);
        return weight.ToBytes();
    }

    [Fact]
    public void SftWithLoraOnAQ8BaseTrainsOnlyTheAdapters()
    {
        string run = Stage("sft", PkuToAlpaca(), Lora("q8_0"));
        using var file = Safetensors.Read(RunFiles.ModelOf(run));
        var names = file.Tensors.Select(t => t.Name).ToHashSet();
        // Adapters on the targeted projections of every layer (stories260K has 5), none elsewhere.
        for (int l = 0; l < 5; l++)
        {
            foreach (var t in new[] { "attention.wq", "attention.wv", "feed_forward.w1" })
            {
                Assert.Contains($"layers.{l}.{t}.lora.a", names);
                var b = RunFiles.Floats(file[$"layers.{l}.{t}.lora.b"]);
                Assert.Contains(b, v => v != 0); // B starts at zero: non-zero means it trained
            }
            Assert.DoesNotContain($"layers.{l}.attention.wk.lora.a", names);
        }
        // The file holds no copy of the frozen base: the checkpoint loads it from the base model it names.
        Assert.DoesNotContain("layers.0.attention.wq.weight", names);
        Assert.Equal(Path.GetFullPath(Model), file.Metadata["base_model"].ToString());
        using var trained = LlamaLoader.Load(RunFiles.ModelOf(run), TestDevices.Native);
        // The frozen base is the Q8_0-quantized original, untouched by training, targeted or not.
        foreach (var name in new[] { "layers.0.attention.wq.weight", "layers.2.attention.wk.weight" })
            Assert.Equal(QuantizedOriginal(name), Q8(trained, name));
        // Weights LoRA does not target and that are not matrices stay as loaded (frozen).
        using var original = LlamaLoader.Load(Model, TestDevices.Native);
        var norm = original.NamedParameters().Single(p => p.Name == "layers.1.attention_norm.weight").Tensor.ToFloatArray();
        Assert.Equal(norm, trained.NamedParameters().Single(p => p.Name == "layers.1.attention_norm.weight").Tensor.ToFloatArray());

        // The adapter model loads for generation: the adapters are part of the policy.
        var gen = Cli("generate", "--model", RunFiles.ModelOf(run), "--tokenizer", Tokenizer, "--prompt", "Once upon a time", "--max-new-tokens", "5",
            "--temperature", "0", "--device", "cpu");
        Assert.True(gen.Code == 0, gen.Error);
    }

    /// <summary>Alpaca rows made from the PKU-SafeRLHF sample (prompt → the first response).</summary>
    private string PkuToAlpaca()
    {
        var rows = File.ReadLines(Assets.Require("data/pku-saferlhf-alpaca7b-test-head150.jsonl")).Take(6)
            .Select(l => JsonNode.Parse(l)!.AsObject())
            .Select(r => new JsonObject { ["instruction"] = r["prompt"]!.GetValue<string>(), ["output"] = r["response_0"]!.GetValue<string>() }.ToJsonString());
        string path = Path.Combine(_dir, "alpaca.jsonl");
        File.WriteAllText(path, string.Join("\n", rows) + "\n");
        return path;
    }

    [Fact]
    public void DpoWithLoraStartsAtAZeroMarginAndTrainsTheAdapters()
    {
        string run = Stage("dpo", PkuData(6), Lora(null), steps: 3);
        var losses = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Where(l => l.Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble()).ToList();
        // Before the first update the adapters are zero, so policy = reference and every margin is 0: loss = ln 2.
        Assert.Equal(Math.Log(2), losses[0], 5);
        Assert.NotEqual(losses[0], losses[^1]);
        using var file = Safetensors.Read(RunFiles.ModelOf(run));
        Assert.Contains(RunFiles.Floats(file["layers.0.attention.wq.lora.b"]), v => v != 0);
    }

    [Fact]
    public void PpoLagWithLoraOnAQ8ActorResumesBitIdenticallyAndKeepsTheBaseFrozen()
    {
        string data = PkuData(6);
        string reward = Stage("reward", data, Lora(null));
        string cost = Stage("cost", data, Lora(null));
        var config = new JsonObject
        {
            ["actor"] = Model, ["reward_model"] = reward, ["cost_model"] = cost, ["tokenizer"] = Tokenizer, ["data"] = data,
            ["max_prompt_length"] = 200, ["seed"] = 5, ["lora"] = Lora("q8_0"),
            ["rl"] = new JsonObject
            {
                ["steps"] = 3, ["batch_size"] = 2, ["max_new_tokens"] = 4, ["actor_lr"] = 1e-2, ["critic_lr"] = 1e-3, ["lambda_lr"] = 0.5,
            },
        };
        string configFile = Write("ppo-lag.json", config);
        string whole = Path.Combine(_dir, "whole"), split = Path.Combine(_dir, "split");
        Ok(Cli("ppo-lag", "--config", configFile, "--out", whole, "--device", "cpu", "--quiet"));
        Ok(Cli("ppo-lag", "--config", configFile, "--set", "stop_after_steps=1", "--out", split, "--device", "cpu", "--quiet"));
        Ok(Cli("ppo-lag", "--resume", split, "--set", "stop_after_steps=0", "--device", "cpu", "--quiet"));

        Assert.Equal(File.ReadAllLines(Path.Combine(whole, "metrics.jsonl")), File.ReadAllLines(Path.Combine(split, "metrics.jsonl")));
        foreach (var f in new[] { "actor.safetensors", "checkpoint-3/reward_critic.safetensors", "checkpoint-3/cost_critic.safetensors" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(whole, f)), File.ReadAllBytes(Path.Combine(split, f)));

        using var actor = Safetensors.Read(Path.Combine(whole, "actor.safetensors"));
        // The actor's file holds its adapters and the reference of its base, which loading reads again.
        Assert.All(actor.Tensors, t => Assert.Matches(@"\.lora\.[ab]$", t.Name));
        Assert.Equal(Path.GetFullPath(Model), actor.Metadata["base_model"].ToString());
        using (var loaded = LlamaLoader.Load(Path.Combine(whole, "actor.safetensors"), TestDevices.Native))
            Assert.Equal(QuantizedOriginal("layers.3.attention.wq.weight"), Q8(loaded, "layers.3.attention.wq.weight"));
        Assert.Contains(RunFiles.Floats(actor["layers.3.attention.wq.lora.b"]), v => v != 0);
        // The critics train adapters and their heads; their base stays the reward/cost model's. Like the cost model's
        // file, a critic's file holds its adapters and head only (no copy of the frozen base) and names the base model.
        using var critic = Safetensors.Read(Path.Combine(whole, "checkpoint-3", "cost_critic.safetensors"));
        using var costModel = Safetensors.Read(RunFiles.ModelOf(cost));
        foreach (var file in new[] { critic, costModel })
        {
            var names = file.Tensors.Select(t => t.Name).ToList();
            Assert.Contains(names, n => n.EndsWith(".lora.a", StringComparison.Ordinal));
            Assert.Contains("score_head.weight", names);
            Assert.DoesNotContain(names, n => n.EndsWith("attention.wq.weight", StringComparison.Ordinal) || n.EndsWith("tok_embeddings.weight", StringComparison.Ordinal));
            Assert.Equal("adapters_and_trainable", file.Metadata["saved_parameters"].ToString());
            Assert.Equal(Path.GetFullPath(Model), file.Metadata["base_model"].ToString());
        }

        // The adapter actor is a policy the other commands load; the score models' base must then be named.
        var evalConfig = new JsonObject
        {
            ["policy"] = Path.Combine(whole, "actor.safetensors"), ["reward_model"] = reward, ["cost_model"] = cost,
            ["tokenizer"] = Tokenizer, ["data"] = data, ["max_new_tokens"] = 4, ["max_prompts"] = 2,
        };
        var refused = Cli("eval", "--config", Write("eval-no-base.json", evalConfig), "--out", Path.Combine(_dir, "eval0"), "--device", "cpu");
        Assert.NotEqual(0, refused.Code);
        Assert.Contains("set 'score_base'", refused.Error);
        evalConfig["score_base"] = Model;
        Ok(Cli("eval", "--config", Write("eval.json", evalConfig), "--out", Path.Combine(_dir, "eval"), "--device", "cpu", "--quiet"));
        var result = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "eval", "result.json"))).RootElement;
        Assert.True(result.TryGetProperty("mean_reward", out var meanReward) && double.IsFinite(meanReward.GetDouble()), result.GetRawText());
    }

    /// <summary>stories260K as a Hugging Face checkpoint folder with BF16 weights (q/k rows in HF order,
    /// config.json); returns the folder and the Meta-order BF16 tensors written.</summary>
    private (string Folder, Dictionary<string, RawTensor> Bf16) HfBf16Folder()
    {
        string folder = Path.Combine(_dir, "hf");
        Directory.CreateDirectory(folder);
        using var bin = WeightFile.Open(Model);
        var c = bin.Config!;
        var meta = new Dictionary<string, RawTensor>();
        var hf = new List<RawTensor>();
        foreach (var t in bin.Tensors)
        {
            var bf16 = ToBf16(t);
            meta[t.Name] = bf16;
            var h = bf16.WithName(HfCheckpoint.ToHfName(t.Name));
            if (t.Name.EndsWith("attention.wq.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NHeads);
            if (t.Name.EndsWith("attention.wk.weight", StringComparison.Ordinal)) h = HfRopePermutation.Permute(h, c.NKvHeads);
            hf.Add(h);
        }
        Safetensors.Write(Path.Combine(folder, HfCheckpoint.SingleFile), hf, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFile), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama", ["hidden_size"] = c.Dim,
            ["intermediate_size"] = c.HiddenDim, ["num_hidden_layers"] = c.NLayers, ["num_attention_heads"] = c.NHeads,
            ["num_key_value_heads"] = c.NKvHeads, ["vocab_size"] = c.VocabSize, ["max_position_embeddings"] = c.SeqLen,
            ["rms_norm_eps"] = c.NormEps, ["rope_theta"] = c.RopeTheta, ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["torch_dtype"] = "bfloat16",
        }));
        return (folder, meta);
    }

    /// <summary>F32 → BF16 with round-to-nearest-even (the values here are finite).</summary>
    private static RawTensor ToBf16(RawTensor f32)
    {
        var src = MemoryMarshal.Cast<byte, uint>(f32.Data.Span);
        var dst = new ushort[src.Length];
        for (int i = 0; i < src.Length; i++) dst[i] = (ushort)((src[i] + 0x7FFF + ((src[i] >> 16) & 1)) >> 16);
        return new RawTensor(f32.Name, DType.BF16, f32.Dims, MemoryMarshal.AsBytes(dst.AsSpan()).ToArray());
    }

    [Fact]
    public void PpoLagWithLoraOnAHuggingFaceBf16CheckpointKeepsTheBf16Base()
    {
        var (folder, bf16) = HfBf16Folder();
        string data = PkuData(6);
        string reward = Stage("reward", data, Lora(null), model: folder);
        string cost = Stage("cost", data, Lora(null), model: folder);
        var config = new JsonObject
        {
            ["actor"] = folder, ["reward_model"] = reward, ["cost_model"] = cost, ["tokenizer"] = Tokenizer, ["data"] = data,
            ["max_prompt_length"] = 200, ["seed"] = 5, ["lora"] = Lora(null),
            ["rl"] = new JsonObject { ["steps"] = 2, ["batch_size"] = 2, ["max_new_tokens"] = 4, ["actor_lr"] = 1e-2 },
        };
        string run = Path.Combine(_dir, "ppo-lag-hf");
        Ok(Cli("ppo-lag", "--config", Write("ppo-lag-hf.json", config), "--out", run, "--device", "cpu", "--quiet"));

        using var actor = Safetensors.Read(Path.Combine(run, "actor.safetensors"));
        Assert.Equal(Path.GetFullPath(folder), actor.Metadata["base_model"].ToString());
        using var loaded = LlamaLoader.Load(Path.Combine(run, "actor.safetensors"), TestDevices.Native);
        // The projections stay BF16 as stored, in Meta row order, bit for bit; the adapters trained.
        foreach (var name in new[] { "layers.0.attention.wq.weight", "layers.4.attention.wk.weight", "layers.2.feed_forward.w2.weight" })
        {
            Assert.DoesNotContain(name, actor.Tensors.Select(t => t.Name));
            var weight = loaded.NamedParameters().Single(p => p.Name == name).Tensor;
            Assert.Equal(DType.BF16, weight.DType);
            Assert.Equal(bf16[name].Data.ToArray(), weight.ToBytes());
        }
        Assert.Contains(RunFiles.Floats(actor["layers.0.attention.wq.lora.b"]), v => v != 0);
    }

    [Theory]
    [InlineData("lora.quantize=q5", "'lora.quantize'")]
    [InlineData("lora.rank=0", "'lora.rank'")]
    public void BadLoraValuesAreNamed(string set, string mention)
    {
        string config = Write("sft.json", new JsonObject
        {
            ["model"] = Model, ["data"] = PkuToAlpaca(), ["lora"] = Lora(null),
            ["train"] = new JsonObject { ["steps"] = 1, ["batch_size"] = 1 },
        });
        var r = Cli("sft", "--config", config, "--set", set, "--out", Path.Combine(_dir, "run"), "--device", "cpu");
        Assert.NotEqual(0, r.Code);
        Assert.Contains(mention, r.Error);
        Assert.DoesNotContain("   at ", r.Error);
    }

    [Fact]
    public void UnknownLoraTargetIsNamed()
    {
        var lora = Lora(null);
        lora["targets"] = new JsonArray("wq", "wz");
        string config = Write("sft.json", new JsonObject
        {
            ["model"] = Model, ["data"] = PkuToAlpaca(), ["lora"] = lora, ["train"] = new JsonObject { ["steps"] = 1, ["batch_size"] = 1 },
        });
        var r = Cli("sft", "--config", config, "--out", Path.Combine(_dir, "run"), "--device", "cpu");
        Assert.NotEqual(0, r.Code);
        Assert.Contains("unknown projection 'wz'", r.Error);
    }
}
