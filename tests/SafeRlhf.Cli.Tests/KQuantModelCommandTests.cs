using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>A GGUF of a LLaMA shape in llama.cpp's Q4_K_M mix (Q4_K matrices and token embedding, Q6_K output,
/// Q6_K value/down projections in the layers that get more bits) loads, generates with its matrices kept
/// quantized, and trains LoRA on its frozen K-quant base.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class KQuantModelCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-kquant-" + Guid.NewGuid().ToString("N"));

    public KQuantModelCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static void Ok((int Code, string Out, string Error) r) => Assert.True(r.Code == 0, r.Error);

    private static string Tokenizer => Assets.Require("models/tok512.bin");

    [Fact]
    public void Q4KMModelGeneratesKeptQuantizedAndTrainsLora()
    {
        // llama-110m's widths (768, 2048) are multiples of 256, as the K-quants need; one layer keeps it small.
        string folder = Path.Combine(_dir, "init");
        var init = CliHarness.Run("init", "--preset", "llama-110m", "--layers", "1", "--vocab", "512", "--quantize", "q4_k_m",
            "--seed", "4", "--out", folder, "--quiet");
        Ok(init);
        string model = init.Out.Trim();
        byte[] wq, output;
        using (var file = WeightFile.Open(model))
        {
            Assert.Equal(DType.Q4_K, file[LlamaTensorNames.TokEmbeddings].DType);
            Assert.Equal(DType.Q4_K, file[LlamaTensorNames.Wq(0)].DType);
            Assert.Equal(DType.Q6_K, file[LlamaTensorNames.Wv(0)].DType);  // the last eighth of one layer: more bits
            Assert.Equal(DType.Q6_K, file[LlamaTensorNames.Output].DType);
            wq = file[LlamaTensorNames.Wq(0)].Data.ToArray();
            output = file[LlamaTensorNames.Output].Data.ToArray();
        }

        // Greedy generation is the same with the matrices kept as Q4_K/Q6_K and dequantized to F32.
        string[] gen = ["generate", "--model", model, "--tokenizer", Tokenizer, "--prompt", "Once upon a time",
            "--max-new-tokens", "6", "--temperature", "0", "--device", "cpu"];
        var kept = CliHarness.Run([.. gen, "--keep-quantized"]);
        var dense = CliHarness.Run(gen);
        Ok(kept);
        Ok(dense);
        Assert.False(string.IsNullOrWhiteSpace(kept.Out));
        Assert.Equal(dense.Out, kept.Out);

        // SFT with LoRA: the K-quant base stays as stored, the adapters train.
        string data = Path.Combine(_dir, "alpaca.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 4).Select(i =>
            new JsonObject { ["instruction"] = $"Tell story {i}.", ["output"] = "Once upon a time there was a cat." }.ToJsonString()));
        var config = new JsonObject
        {
            ["model"] = model, ["tokenizer"] = Tokenizer, ["data"] = data, ["max_length"] = 160, ["seed"] = 3,
            ["lora"] = new JsonObject { ["rank"] = 4, ["alpha"] = 8, ["targets"] = new JsonArray("wq", "wv", "w2") },
            ["train"] = new JsonObject { ["steps"] = 2, ["batch_size"] = 2, ["lr"] = 5e-3, ["warmup_ratio"] = 0.0 },
        };
        string configFile = Path.Combine(_dir, "sft.json");
        File.WriteAllText(configFile, config.ToJsonString());
        string run = Path.Combine(_dir, "sft");
        Ok(CliHarness.Run("sft", "--config", configFile, "--out", run, "--device", "cpu", "--quiet"));
        string trained = Path.Combine(run, File.ReadAllText(Path.Combine(run, "latest")).Trim(), "model.safetensors");
        using (var file = Safetensors.Read(trained))
        using (var loaded = LlamaLoader.Load(trained, TestDevices.Native))
        {
            // The checkpoint holds the adapters; its base, read again from the GGUF file, keeps its blocks.
            Assert.DoesNotContain(LlamaTensorNames.Wq(0), file.Tensors.Select(t => t.Name));
            var byName = loaded.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor);
            Assert.Equal(DType.Q4_K, byName[LlamaTensorNames.Wq(0)].DType);
            Assert.Equal(wq, byName[LlamaTensorNames.Wq(0)].ToBytes());
            Assert.Equal(DType.Q6_K, byName[LlamaTensorNames.Output].DType);
            Assert.Equal(output, byName[LlamaTensorNames.Output].ToBytes());
            foreach (var target in new[] { "attention.wq", "attention.wv", "feed_forward.w2" })
            {
                var b = file[$"layers.0.{target}.lora.b"];
                Assert.Equal(DType.F32, b.DType);
                Assert.Contains(MemoryMarshal.Cast<byte, float>(b.Data.Span).ToArray(), v => v != 0);  // B starts at zero
            }
        }
        var after = CliHarness.Run("generate", "--model", trained, "--tokenizer", Tokenizer, "--prompt", "Once upon a time",
            "--max-new-tokens", "4", "--temperature", "0", "--device", "cpu", "--keep-quantized");
        Ok(after);
    }
}
