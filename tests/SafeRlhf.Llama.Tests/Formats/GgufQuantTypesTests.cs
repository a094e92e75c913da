using System.Text;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Init;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;
using static SafeRlhf.Llama.Tests.Golden.GoldenSupport;

namespace SafeRlhf.Llama.Tests.Formats;

/// <summary>GGUF files holding every tensor type llama-quantize writes for the common presets: the kept types keep
/// their bytes, the others arrive as F32 equal to the bit-field model; bad sizes and truncation name the tensor; a
/// Q4_K_M-mix model kept quantized gives the logits of the same file dequantized to F32.</summary>
public sealed class GgufQuantTypesTests
{
    /// <summary>A GGUF v3 file with no metadata and the given tensors (ne innermost first), alignment 32.</summary>
    private static byte[] Gguf(IReadOnlyList<(string Name, ulong[] Ne, uint Type, byte[] Data)> tensors, int? declaredBytes = null)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(GgufReader.Magic);
            w.Write(3u);
            w.Write((ulong)tensors.Count);
            w.Write(0UL);
            ulong offset = 0;
            foreach (var (name, ne, type, data) in tensors)
            {
                var b = Encoding.UTF8.GetBytes(name);
                w.Write((ulong)b.Length);
                w.Write(b);
                w.Write((uint)ne.Length);
                foreach (var n in ne) w.Write(n);
                w.Write(type);
                w.Write(offset);
                offset += ((ulong)(declaredBytes ?? data.Length) + 31) / 32 * 32;
            }
            foreach (var (_, _, _, data) in tensors)
            {
                w.Flush();
                while (buffer.Length % 32 != 0) w.Write((byte)0);
                w.Write(data);
            }
        }
        return buffer.ToArray();
    }

    [Fact]
    public void EveryPresetTypeReadsAsStoredOrAsTheModelsF32()
    {
        var rng = new Rng(4242);
        var types = new[]
        {
            GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
            GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
        };
        var tensors = new List<(string, ulong[], uint, byte[])>();
        foreach (var t in types)
        {
            var (per, _) = GgmlBlockModel.Layout(t);
            tensors.Add((t.ToString(), [(ulong)(2 * per), 3], (uint)t, GgmlBlockModel.RandomBlocks(rng, t, 6)));
        }
        var f16 = new byte[2 * 5];
        BitConverter.TryWriteBytes(f16.AsSpan(0), (Half)1.5);
        BitConverter.TryWriteBytes(f16.AsSpan(2), (Half)(-0.0));
        tensors.Add(("F16", [5], 1, f16));
        tensors.Add(("BF16", [5], 30, [0, 0x3F, 0, 0xBF, 0, 0x80, 0x80, 0x3F, 1, 0]));

        using var dir = new TempDir();
        string path = dir.File("types.gguf");
        File.WriteAllBytes(path, Gguf(tensors));
        using var file = GgufReader.Read(path, metaNames: false);
        foreach (var (name, ne, type, data) in tensors)
        {
            var t = file[name];
            Assert.Equal(ne.Reverse().Select(n => (int)n), t.Dims);
            if (!GgmlTypes.TryFrom(type, out var g) || g is GgmlType.F16 or GgmlType.BF16)
            {
                Assert.Equal(data, t.Data.ToArray());
                continue;
            }
            var (per, bytes) = GgmlBlockModel.Layout(g);
            if (GgmlTypes.Kept(g) is { } kept)
            {
                Assert.Equal(kept, t.DType);
                Assert.Equal(data, t.Data.ToArray());
                continue;
            }
            Assert.Equal(DType.F32, t.DType);
            var values = t.ToSingleArray();
            for (int e = 0; e < values.Length; e++)
            {
                float expected = GgmlBlockModel.Element(g, data.AsSpan(e / per * bytes, bytes), e % per);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(values[e]),
                    $"{g} element {e}: expected {expected}, got {values[e]}");
            }
        }
        Assert.Equal(new[] { 1.5f, -0.0f, 0, 0, 0 }, file["F16"].ToSingleArray()[..2].Concat(new float[3]));
        Assert.Equal(new[] { 0.5f, -0.5f }, file["BF16"].ToSingleArray()[..2]);
    }

    [Theory]
    [InlineData(GgmlType.Q4_K)] [InlineData(GgmlType.Q6_K)] [InlineData(GgmlType.Q3_K)] [InlineData(GgmlType.Q5_1)]
    public void BadRowLengthsTruncationAndUnknownTypesNameTheTensor(GgmlType type)
    {
        var (per, bytes) = GgmlBlockModel.Layout(type);
        using var dir = new TempDir();

        // A row that is not a whole number of blocks.
        string rows = dir.File("rows.gguf");
        File.WriteAllBytes(rows, Gguf([("blk.0.attn_q.weight", [(ulong)(per + per / 2), 1], (uint)type, new byte[2 * bytes])]));
        AssertThrowsNaming(() => GgufReader.Read(rows).Dispose(), rows, "blk.0.attn_q.weight", $"multiple of {per}");

        // Data that ends before the tensor does.
        string cut = dir.File("cut.gguf");
        var whole = Gguf([("output.weight", [(ulong)per, 4], (uint)type, new byte[4 * bytes])]);
        File.WriteAllBytes(cut, whole[..^(bytes / 2)]);
        AssertThrowsNaming(() => GgufReader.Read(cut).Dispose(), cut, "output.weight", "extends past the end of the file");

        // A type number that ggml has but no reader path takes (IQ2_XXS = 16).
        string unknown = dir.File("unknown.gguf");
        File.WriteAllBytes(unknown, Gguf([("token_embd.weight", [256, 1], 16, new byte[66])]));
        var e = Assert.Throws<WeightFormatException>(() => GgufReader.Read(unknown).Dispose());
        Assert.Equal("token_embd.weight", e.TensorName);
        Assert.Contains("ggml tensor type 16 is not supported", e.Message);
        Assert.Contains("Q6_K", e.Message);
    }

    /// <summary>A LLaMA shape whose every matrix row is a multiple of 256.</summary>
    internal static LlamaConfig KShape => new()
    {
        Dim = 256, HiddenDim = 512, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 512, SeqLen = 64,
    };

    [Theory]
    [InlineData(QuantMix.Q4_K_M, "native")] [InlineData(QuantMix.Q6_K, "native")] [InlineData(QuantMix.Q4_K_M, "reference")]
    public void MixKeptQuantizedGivesTheLogitsOfTheFileDequantizedToF32(QuantMix mix, string device)
    {
        var dev = DeviceNamed(device);
        using var dir = new TempDir();
        string path = dir.File("model.gguf");
        RandomCheckpoint.Write(path, KShape, new RandomCheckpointOptions { Seed = 3, Mix = mix });

        bool m = mix == QuantMix.Q4_K_M;
        using (var file = WeightFile.Open(path))
        {
            // The llama-quantize layout of the mix: token embedding Q4_K (Q6_K), output Q6_K, layer 1 (the last
            // eighth of 2 layers) gets Q6_K attention values and feed-forward down projections, layer 0 Q4_K.
            Assert.Equal(m ? DType.Q4_K : DType.Q6_K, file[LlamaTensorNames.TokEmbeddings].DType);
            Assert.Equal(DType.Q6_K, file[LlamaTensorNames.Output].DType);
            Assert.Equal(m ? DType.Q4_K : DType.Q6_K, file[LlamaTensorNames.Wv(0)].DType);
            Assert.Equal(DType.Q6_K, file[LlamaTensorNames.Wv(1)].DType);
            Assert.Equal(m ? DType.Q4_K : DType.Q6_K, file[LlamaTensorNames.W2(0)].DType);
            Assert.Equal(DType.Q6_K, file[LlamaTensorNames.W2(1)].DType);
            Assert.Equal(m ? DType.Q4_K : DType.Q6_K, file[LlamaTensorNames.Wq(1)].DType);
            Assert.Equal(DType.F32, file[LlamaTensorNames.Norm].DType);
            Assert.Equal(m ? 15u : 18u, file.Metadata["general.file_type"]);
        }

        using var kept = LlamaLoader.Load(path, dev, LlamaLoadOptions.FrozenStorage);
        using var dense = LlamaLoader.Load(path, dev);
        Assert.Equal(DType.Q6_K, kept.Output!.Weight.DType);
        Assert.Equal(m ? DType.Q4_K : DType.Q6_K, kept.Layers[0].Wq.Weight.DType);
        Assert.Equal(DType.F32, dense.Layers[0].Wq.Weight.DType);
        int[] prompt = [.. Prompt, .. Prompt, .. Prompt, .. Prompt, .. Prompt];  // 35 rows: the native product's packed tiles
        var a = Logits(dense, prompt);
        var b = Logits(kept, prompt);
        if (device == "reference")
        {
            // The reference multiplies the decoded weights in fp32: the F32 file's logits to fp32 rounding.
            double max = a.Max(Math.Abs);
            for (int i = 0; i < a.Length; i++)
                Assert.True(Math.Abs(a[i] - b[i]) <= 2e-5 * max + 1e-6, $"logit {i}: F32 {a[i]:G9}, kept {b[i]:G9}");
            Assert.True(RelativeError(a, b) < 1e-5);
        }
        else
        {
            // The native K-quant products round the activations to int8 per 32 values (as llama.cpp does), at decode
            // and prefill alike: within that rounding's reach of the F32 logits, and no longer equal to them.
            Assert.InRange(RelativeError(a, b), 1e-5, 2e-2);
            Assert.InRange(RelativeError(Logits(dense, Prompt), Logits(kept, Prompt)), 1e-5, 2e-2);

            // Rows interleaved by 16: the same int8 model, summed in another fp32 order.
            // One activation whose rounding that order flips perturbs every later activation by far more than an ulp, so
            // the two layouts' logits differ by up to the int8 rounding's own reach (measured here: 6e-3 at 35 rows, below
            // 1e-5 at 7); the kernels' agreement is pinned in NativeInterleavedKQuantTests.
            using var interleaved = LlamaLoader.Load(path, dev, LlamaLoadOptions.FrozenStorage with { InterleaveRows = true });
            Assert.Equal(m ? DType.Q4_Kx16 : DType.Q6_Kx16, interleaved.Layers[0].Wq.Weight.DType);
            Assert.Equal(DType.Q6_Kx16, interleaved.Output!.Weight.DType);
            var c = Logits(interleaved, prompt);
            Assert.InRange(RelativeError(a, c), 1e-5, 2e-2);
            Assert.True(RelativeError(b, c) < 2e-2);
        }
    }
}
