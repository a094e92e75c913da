using System.Runtime.InteropServices;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Golden.GoldenSupport;

namespace SafeRlhf.Llama.Tests.Golden;

/// <summary>llama-2-tiny-random.gguf (F16 matrices, the full LLaMA-2 vocabulary) loads and generates with its own tokenizer.</summary>
public sealed class GgufTinyRandomTests
{
    private static string GgufPath => Assets.Require("models/llama-2-tiny-random.gguf");

    [Fact]
    public void LoadsWithTheFileConfigAndConvertsF16ToF32()
    {
        using var file = WeightFile.Open(GgufPath);
        var stated = file.Config!;
        using var model = LlamaLoader.FromWeightFile(file, TestDevices.Native);
        Assert.Equal(stated.VocabSize, model.Config.VocabSize);
        Assert.Equal(SentencePieceBpeTokenizer.FromGguf(file).VocabSize, model.Config.VocabSize);
        Assert.Equal(stated.Dim, model.Config.Dim);
        Assert.Equal(stated.NLayers, model.Layers.Count);
        Assert.Equal(stated.TiedEmbeddings, model.Output is null);
        Assert.Contains(file.Tensors, t => t.DType == DType.F16);
        foreach (var (name, tensor) in model.NamedParameters())
        {
            Assert.Equal(DType.F32, tensor.DType);
            var raw = file[name];
            var expected = raw.DType == DType.F16
                ? Enumerable.Range(0, (int)raw.Numel).Select(i => HalfBitsToFloat(BitConverter.ToUInt16(raw.Data.Span.Slice(2 * i, 2)))).ToArray()
                : MemoryMarshal.Cast<byte, float>(raw.Data.Span).ToArray();
            Assert.Equal(expected, tensor.ToFloatArray());
        }
    }

    /// <summary>IEEE binary16 → float from the definition (sign, 5-bit exponent biased by 15, 10-bit fraction; exponent 0
    /// subnormal, 31 infinity or NaN), independent of the conversion the loader uses.</summary>
    private static float HalfBitsToFloat(ushort bits)
    {
        int sign = bits >> 15 == 1 ? -1 : 1, exponent = (bits >> 10) & 0x1F, fraction = bits & 0x3FF;
        if (exponent == 31) return fraction == 0 ? sign * float.PositiveInfinity : float.NaN;
        double magnitude = exponent == 0 ? Math.ScaleB(fraction / 1024.0, -14) : Math.ScaleB(1 + fraction / 1024.0, exponent - 15);
        return (float)(sign * magnitude);
    }

    [Fact]
    public void GeneratesWithItsOwnTokenizerAndKeptF16GivesTheSameTokens()
    {
        var tokenizer = TextTokenizer.Load(GgufPath);
        var prompt = tokenizer.Encode("Once upon a time", addBos: true, addEos: false);
        Assert.Equal(tokenizer.BosId, prompt[0]);
        var greedy = new SamplingOptions { Temperature = 0 };

        using var converted = LlamaLoader.Load(GgufPath, TestDevices.Native);
        using var kept = LlamaLoader.Load(GgufPath, TestDevices.Native, LlamaLoadOptions.FrozenStorage);
        Assert.Equal(DType.F16, kept.Layers[0].Wq.Weight.DType);
        Assert.False(kept.Layers[0].Wq.Weight.RequiresGrad);
        var a = Generator.Generate(converted, prompt, 12, greedy);
        var b = Generator.Generate(kept, prompt, 12, greedy);
        Assert.Equal(12, a.Count);
        Assert.All(a, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
        Assert.Equal(a, b);
        Assert.Equal(Logits(converted, prompt), Logits(kept, prompt));
        Assert.False(string.IsNullOrEmpty(tokenizer.Decode(a)));

        // The native F32 logits agree with the F64 reference oracle.
        using var reference = LlamaLoader.Load(GgufPath, TestDevices.Reference, new LlamaLoadOptions { ComputeType = DType.F64 });
        var expected = Logits(reference, prompt);
        var actual = Logits(converted, prompt);
        double worst = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= 1e-4 * (1 + expected.Max(Math.Abs)), $"native vs reference logits differ by {worst:G3}");
    }
}
