using System.Text.Json;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Cli.Tests;

/// <summary>`saferlhf init`: random-weight checkpoints that generate and the training commands load, and one clear
/// error line naming the option for every bad option.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class InitCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "saferlhf-init-" + Guid.NewGuid().ToString("N"));

    public InitCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static string Tokenizer => Assets.Require("models/tok512.bin");

    private string Out(string name) => Path.Combine(_dir, name);

    [Fact]
    public void WithATokenizerTheGgufCarriesItsVocabulary()
    {
        var init = CliHarness.Run("init", "--preset", "tiny", "--vocab", "512", "--tokenizer", Tokenizer, "--out", Out("vocab"), "--quiet");
        Assert.True(init.Code == 0, init.Error);
        string model = init.Out.Trim();
        // The file's own vocabulary (read by the GGUF SentencePiece tokenizer) encodes text as the llama2.c tokenizer does.
        using var weights = SafeRlhf.Llama.Formats.WeightFile.Open(model);
        var fromFile = SafeRlhf.Llama.Tokenizers.SentencePieceBpeTokenizer.FromGguf(weights);
        var original = SafeRlhf.Llama.Tokenizers.TextTokenizer.Load(Tokenizer);
        foreach (var text in new[] { "Once upon a time", "Tim had a red ball. He was happy!" })
            Assert.Equal(original.Encode(text, addBos: true, addEos: false), fromFile.Encode(text, addBos: true, addEos: false));
        // generate needs no --tokenizer now.
        var generate = CliHarness.Run("generate", "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "4", "--temperature", "0", "--json");
        Assert.True(generate.Code == 0, generate.Error);
    }

    [Fact]
    public void ATokenizerOfAnotherSizeIsRefusedNamingBoth()
    {
        var init = CliHarness.Run("init", "--preset", "tiny", "--vocab", "600", "--tokenizer", Tokenizer, "--out", Out("wrong"), "--quiet");
        Assert.Equal(1, init.Code);
        Assert.Contains("--tokenizer", init.Error);
        Assert.Contains("512 tokens", init.Error);
        Assert.Contains("--vocab 512", init.Error);
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("q4_0")]
    [InlineData("q8_0")]
    public void TinyPresetGeneratesWithTheTok512Tokenizer(string type)
    {
        string[] quantize = type == "f32" ? [] : ["--quantize", type];
        var init = CliHarness.Run(["init", "--preset", "tiny", "--seed", "3", "--out", Out(type), "--quiet", .. quantize]);
        Assert.True(init.Code == 0, init.Error);
        string model = Path.Combine(Out(type), "model.gguf");
        Assert.Equal(model, init.Out.Trim());
        Assert.Equal("", init.Error);

        var generate = CliHarness.Run("generate", "--model", model, "--tokenizer", Tokenizer, "--prompt", "Once upon a time",
            "--max-new-tokens", "8", "--temperature", "0", "--json", "--keep-quantized");
        Assert.True(generate.Code == 0, generate.Error);
        using var doc = JsonDocument.Parse(generate.Out);
        var ids = doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        Assert.InRange(ids.Count, 1, 8);
        Assert.All(ids, id => Assert.InRange(id, 0, LlamaConfig.Tiny.VocabSize - 1));
        // The model has no vocabulary of its own.
        var noTokenizer = CliHarness.Run("generate", "--model", model, "--prompt", "Once upon a time");
        Assert.NotEqual(0, noTokenizer.Code);
        Assert.Contains("holds no vocabulary; pass --tokenizer PATH", noTokenizer.Error);

        using var loaded = LlamaLoader.Load(model, TestDevices.Native, LlamaLoadOptions.FrozenStorage);
        Assert.Equal(type == "f32" ? DType.F32 : Enum.Parse<DType>(type.ToUpperInvariant()), loaded.Layers[1].W3.Weight.DType);
    }

    [Fact]
    public void LayerAndVocabOverridesShapeAPresetAndProgressGoesToStderr()
    {
        var r = CliHarness.Run("init", "--preset", "llama-110m", "--layers", "1", "--vocab", "512", "--dtype", "bf16",
            "--format", "safetensors", "--out", Out("m"));
        Assert.True(r.Code == 0, r.Error);
        string model = Path.Combine(Out("m"), "model.safetensors");
        Assert.Equal(model, r.Out.Trim());
        Assert.Contains("llama-110m: 1 layers", r.Error);
        Assert.Equal(LlamaConfig.Llama110M with { NLayers = 1, VocabSize = 512 }, LlamaLoader.ReadConfig(model));
    }

    [Theory]
    [InlineData("--preset", "--preset", "llama-13b")]
    [InlineData("--quantize", "--preset", "tiny", "--quantize", "q5_1")]
    [InlineData("--layers", "--preset", "tiny", "--layers", "0")]
    [InlineData("--vocab", "--preset", "tiny", "--vocab", "-3")]
    [InlineData("--dtype", "--preset", "tiny", "--dtype", "f8")]
    [InlineData("--format", "--preset", "tiny", "--format", "bin")]
    [InlineData("--quantize", "--preset", "tiny", "--format", "safetensors", "--quantize", "q8_0")]
    public void BadOptionsGiveOneLineNamingTheOption(string option, params string[] args)
    {
        string folder = Out("bad");
        var r = CliHarness.Run(["init", .. args, "--out", folder]);
        AssertCleanFailure(r, option);
        Assert.False(Directory.Exists(folder));
    }

    [Fact]
    public void NonEmptyOutputFolderIsRefusedAndLeftAlone()
    {
        string folder = Out("full");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "keep me");
        var r = CliHarness.Run("init", "--preset", "tiny", "--out", folder);
        AssertCleanFailure(r, "--out", folder);
        Assert.Equal(["notes.txt"], Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName));

        // An existing empty folder is fine.
        string empty = Out("empty");
        Directory.CreateDirectory(empty);
        var ok = CliHarness.Run("init", "--preset", "tiny", "--out", empty, "--quiet");
        Assert.True(ok.Code == 0, ok.Error);
    }

    private static void AssertCleanFailure((int Code, string Out, string Error) r, params string[] mentions)
    {
        Assert.NotEqual(0, r.Code);
        Assert.Equal("", r.Out);
        foreach (var m in mentions) Assert.Contains(m, r.Error);
        Assert.DoesNotContain("   at ", r.Error);
        Assert.Single(r.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --", r.Error);
    }
}
