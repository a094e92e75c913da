using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using SafeRlhf.TestSupport.Fuzz;
using Xunit.Abstractions;

namespace SafeRlhf.Llama.Tests.Fuzz;

/// <summary>Every model and tokenizer reader under seeded structure-aware mutation of a real seed file: each input must
/// be accepted (a model then runs a forward pass, a tokenizer encodes and decodes) or refused with an
/// <see cref="InputFormatException"/>, within the time limit and the allocation bound. A new reader is fuzzed by
/// adding one line to <see cref="Targets"/>.</summary>
public sealed class ReaderFuzzTests(ITestOutputHelper output)
{
    private static bool Typed(Exception e) => e is InputFormatException;

    private static FuzzTarget Target(string name, FuzzInputKind kind, Func<string> seed, string fileName, Action<string> read) =>
        new(name, kind, seed, fileName, read, Typed);

    /// <summary>The readers under fuzzing, one line each.</summary>
    public static readonly IReadOnlyList<FuzzTarget> All =
    [
        Target("llama2c", FuzzInputKind.Binary, () => Assets.Require("models/stories260K.bin"), "model.bin", LoadAndRun) with { DefaultInputs = 500 },
        Target("gguf", FuzzInputKind.Binary, () => Assets.Require("models/llama-2-tiny-random.gguf"), "model.gguf", LoadGgufAndRun) with { DefaultInputs = 250 },
        Target("safetensors", FuzzInputKind.Binary, () => Assets.Require("golden/stories260K_train_golden.safetensors"), "golden.safetensors", ReadAllTensors) with { DefaultInputs = 250 },
        Target("llama-checkpoint", FuzzInputKind.Binary, () => FuzzSeeds.Checkpoint, "model.safetensors", LoadAndRun) with { DefaultInputs = 500 },
        Target("hf-config", FuzzInputKind.Json, () => FuzzSeeds.HfFile(HfCheckpoint.ConfigFile), HfCheckpoint.ConfigFile, LoadAndRun)
            with { ReadFolder = true, Template = () => FuzzSeeds.HfFolder },
        Target("hf-index", FuzzInputKind.Json, () => FuzzSeeds.HfFile(HfCheckpoint.IndexFile), HfCheckpoint.IndexFile, LoadAndRun)
            with { ReadFolder = true, Template = () => FuzzSeeds.HfFolder },
        Target("hf-shard", FuzzInputKind.Binary, () => FuzzSeeds.HfFile(FuzzSeeds.Shard0), FuzzSeeds.Shard0, LoadAndRun)
            with { ReadFolder = true, Template = () => FuzzSeeds.HfFolder },
        Target("sentencepiece", FuzzInputKind.Binary, () => Assets.Require("tokenizer/llama_tokenizer.model"), "tokenizer.model", RunSentencePiece) with { DefaultInputs = 500 },
        Target("llama2c-tokenizer", FuzzInputKind.Binary, () => Assets.Require("models/tok512.bin"), "tokenizer.bin", RunLlama2cTokenizer),
    ];

    /// <summary>xUnit cases: the target names.</summary>
    public static TheoryData<string> Targets => new(All.Select(t => t.Name));

    [Theory]
    [MemberData(nameof(Targets))]
    public void ReaderSurvivesMutatedInputs(string name)
    {
        FuzzRunner.RunAndAssert(All.Single(t => t.Name == name), output);
    }

    private const string Text = "Once upon a time, a naïve 🐉 said: \u0001<0x41> ☃\t\tend";

    private static void LoadAndRun(string path)
    {
        using var model = LlamaLoader.Load(path, TestDevices.Native, new LlamaLoadOptions { MaxSeqLen = 8 });
        Forward(model);
    }

    private static void LoadGgufAndRun(string path)
    {
        using var file = WeightFile.Open(path);
        var tokenizer = SentencePieceBpeTokenizer.FromGguf(file);
        tokenizer.Decode(tokenizer.Encode(Text, addBos: true, addEos: true));
        using var model = LlamaLoader.FromWeightFile(file, TestDevices.Native, new LlamaLoadOptions { MaxSeqLen = 8 });
        Forward(model);
    }

    private static void Forward(LlamaModel model)
    {
        int vocab = model.Config.VocabSize;
        int[] tokens = [1 % vocab, 2 % vocab, (vocab - 1) % vocab];
        using var scope = new TensorScope();
        var h = model.Forward(Tensor.FromArray(model.Device, tokens, 1, 3), Tensor.FromArray(model.Device, new[] { 0, 1, 2 }, 1, 3));
        model.Logits(h).ToDoubleArray();
    }

    private static void ReadAllTensors(string path)
    {
        using var file = WeightFile.Open(path);
        foreach (var t in file.Tensors)
            if (t.DType is DType.F32 or DType.F64 or DType.F16 or DType.BF16 or DType.I32) t.ToDoubleArray();
    }

    private static void RunSentencePiece(string path)
    {
        var tokenizer = SentencePieceBpeTokenizer.Load(path);
        var ids = tokenizer.Encode(Text, addBos: true, addEos: true);
        tokenizer.Decode(ids);
        foreach (int id in ids) tokenizer.DecodePiece(tokenizer.BosId, id);
    }

    private static void RunLlama2cTokenizer(string path)
    {
        var tokenizer = Llama2cTokenizer.Load(path);
        var ids = tokenizer.Encode(Text, addBos: true, addEos: true);
        tokenizer.Decode(ids);
    }
}
