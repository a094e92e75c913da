using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Init;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tests.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Golden.GoldenSupport;

namespace SafeRlhf.Llama.Tests.Init;

/// <summary>Random-weight checkpoints: what RandomCheckpoint writes loads as the model RandomWeights builds in memory.</summary>
public sealed class RandomCheckpointTests
{
    private static readonly Device Dev = TestDevices.Native;

    private static Dictionary<string, Tensor> ByName(LlamaModel model) =>
        model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor, StringComparer.Ordinal);

    [Fact]
    public void GgufLoadsAsTheInMemoryModelWithBitIdenticalLogits()
    {
        using var dir = new TempDir();
        var preset = LlamaConfig.Tiny;
        string path = dir.File("model.gguf");
        RandomCheckpoint.Write(path, preset, new RandomCheckpointOptions { Seed = 7, Name = "tiny" });

        using var loaded = LlamaLoader.Load(path, Dev);
        // GGUF stores the norm epsilon as float32, as llama.cpp reads it.
        Assert.Equal(preset with { NormEps = (float)preset.NormEps }, loaded.Config);
        using var expected = RandomWeights.CreateModel(loaded.Config, Dev, seed: 7);
        var mine = ByName(expected);
        foreach (var (name, t) in loaded.NamedParameters())
        {
            Assert.Equal(DType.F32, t.DType);
            Assert.Equal(mine[name].ToBytes(), t.ToBytes());
        }
        Assert.Equal(Logits(expected, Prompt), Logits(loaded, Prompt));
        using var file = GgufReader.Read(path);
        Assert.Equal(7UL, file.Metadata[RandomCheckpoint.SeedKey]);
        Assert.Equal("tiny", file.Metadata["general.name"]);
        Assert.Equal(new FileInfo(path).Length, file.ConsumedBytes);

        // Another seed gives other weights; norms are ones.
        using var other = RandomWeights.CreateModel(loaded.Config, Dev, seed: 8);
        Assert.NotEqual(mine[LlamaTensorNames.Wq(0)].ToBytes(), ByName(other)[LlamaTensorNames.Wq(0)].ToBytes());
        Assert.All(loaded.Norm.Weight.ToDoubleArray(), v => Assert.Equal(1.0, v));
    }

    [Fact]
    public void TensorsDependOnSeedAndNameOnlyNotOnOrderOrLayerCount()
    {
        using var dir = new TempDir();
        var options = new RandomCheckpointOptions { Seed = 3 };
        RandomCheckpoint.Write(dir.File("two.gguf"), LlamaConfig.Tiny, options);
        RandomCheckpoint.Write(dir.File("three.gguf"), LlamaConfig.Tiny with { NLayers = 3 }, options);
        using var two = WeightFile.Open(dir.File("two.gguf"));
        using var three = WeightFile.Open(dir.File("three.gguf"));
        Assert.Equal(two.Tensors.Count + 9, three.Tensors.Count);
        foreach (var t in two.Tensors)
        {
            Assert.Equal(t.Data.ToArray(), three[t.Name].Data.ToArray());
            Assert.Equal(RandomWeights.Generate(3, t.Name, t.Dims), t.ToSingleArray());
        }
        var w = three[LlamaTensorNames.W1(2)].ToSingleArray();
        double mean = w.Average(v => (double)v), std = Math.Sqrt(w.Average(v => (v - mean) * (v - mean)));
        Assert.InRange(mean, -0.002, 0.002);
        Assert.InRange(std, 0.019, 0.021);
    }

    [Fact]
    public void ValuesDoNotDependOnHowTheFillCallsCutTheTensor()
    {
        int[] dims = [3, 2 * RandomTensorValues.SegmentElements + 100];
        var whole = RandomWeights.Generate(9, "w", dims);
        var values = RandomWeights.Values(9, "w", dims);
        var pieces = new float[whole.Length];
        int at = 0;
        foreach (int n in new[] { 1, 2, 7, RandomTensorValues.SegmentElements, 3 * RandomTensorValues.SegmentElements - 11 })
        {
            values.Fill(pieces.AsMemory(at, n));
            at += n;
        }
        values.Fill(pieces.AsMemory(at));
        Assert.Equal(whole, pieces);
        Assert.True(whole.Distinct().Count() > 0.99 * whole.Length);
        Assert.NotEqual(whole, RandomWeights.Generate(9, "v", dims));
        Assert.All(RandomWeights.Generate(9, "norm", [64]), v => Assert.Equal(1f, v));
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    public void QuantizedMatricesAreKeptAsStoredAndEqualTheBackendsQuantization(DType q)
    {
        using var dir = new TempDir();
        string path = dir.File("model.gguf");
        RandomCheckpoint.Write(path, LlamaConfig.Tiny, new RandomCheckpointOptions { Seed = 11, Quantize = q });
        using var frozen = LlamaLoader.Load(path, Dev, LlamaLoadOptions.FrozenStorage);
        using var dense = RandomWeights.CreateModel(frozen.Config, Dev, seed: 11);
        var mine = ByName(dense);
        var linear = LlamaLoader.Parameters(frozen.Config).Where(p => p.IsLinear).Select(p => p.Name).ToHashSet();
        Assert.Contains(LlamaTensorNames.Output, linear);
        using (GradMode.NoGrad())
            foreach (var (name, t) in frozen.NamedParameters())
            {
                if (!linear.Contains(name))
                {
                    Assert.Equal(DType.F32, t.DType);
                    Assert.Equal(mine[name].ToBytes(), t.ToBytes());
                    continue;
                }
                Assert.Equal(q, t.DType);
                using var native = Ops.Quantize(mine[name], q);
                Assert.Equal(native.ToBytes(), t.ToBytes());
                using var onReference = Tensor.FromArray(TestDevices.Reference, mine[name].ToFloatArray(), mine[name].Shape.ToArray());
                using var reference = Ops.Quantize(onReference, q);
                Assert.Equal(reference.ToBytes(), t.ToBytes());
            }
        // The default options dequantize to F32. The native quantized matmul also rounds the activations to int8
        // blocks, so the logits agree to about a percent, not exactly.
        using var converted = LlamaLoader.Load(path, Dev);
        Assert.Equal(DType.F32, converted.Layers[0].Wq.Weight.DType);
        double error = RelativeError(Logits(converted, Prompt), Logits(frozen, Prompt));
        Assert.True(error < 0.05, $"relative error {error}");
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void SafetensorsCheckpointKeepsHalfMatricesAndTheExactConfig(DType dtype)
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        var config = LlamaConfig.Llama110M with { NLayers = 1, VocabSize = 512 };
        RandomCheckpoint.Write(path, config, new RandomCheckpointOptions { Seed = 5, MatrixType = dtype, Format = CheckpointFormat.Safetensors });
        Assert.Equal(config, LlamaLoader.ReadConfig(path));
        Assert.Equal("5", LlamaCheckpoint.ReadMetadata(path)["init_seed"]);
        using var model = LlamaLoader.Load(path, Dev, LlamaLoadOptions.FrozenStorage);
        Assert.Equal(dtype, model.Layers[0].W2.Weight.DType);
        Assert.Equal(dtype, model.Output!.Weight.DType);
        Assert.Equal(DType.F32, model.TokEmbeddings.Weight.DType);
        var values = RandomWeights.Generate(5, LlamaTensorNames.W2(0), [config.Dim, config.HiddenDim]);
        var expected = new byte[values.Length * 2];
        WeightEncoder.Encode(dtype, values, expected);
        Assert.Equal(expected, model.Layers[0].W2.Weight.ToBytes());
        Assert.Throws<ArgumentException>(() => RandomCheckpoint.Write(dir.File("q.safetensors"), config,
            new RandomCheckpointOptions { Quantize = DType.Q4_0, Format = CheckpointFormat.Safetensors }));
    }

    [Theory]
    [InlineData(CheckpointFormat.Gguf)]
    [InlineData(CheckpointFormat.Safetensors)]
    public void WritingAllocatesLessThanItsLargestTensor(CheckpointFormat format)
    {
        // 42 MB of F32 tensors, the largest (embedding and classifier) 16 MB each: holding every tensor, or even
        // half of one, would allocate more than the bound.
        var config = new LlamaConfig { Dim = 256, HiddenDim = 512, NLayers = 4, NHeads = 4, NKvHeads = 4, VocabSize = 16384, SeqLen = 64 };
        var options = new RandomCheckpointOptions { Format = format };
        long largest = RandomCheckpoint.Plan(config, options).Max(t => RawTensor.ByteCount(t.DType, t.Dims));
        long total = RandomCheckpoint.DataBytes(config, options);
        Assert.Equal(16L << 20, largest);
        Assert.True(total > 2 * largest);
        using var dir = new TempDir();
        string path = dir.File("model." + format.ToString().ToLowerInvariant());
        long before = GC.GetAllocatedBytesForCurrentThread();
        RandomCheckpoint.Write(path, config, options);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < largest / 2, $"writing {total} bytes allocated {allocated} bytes");
        Assert.InRange(new FileInfo(path).Length, total, total + (1 << 16));
    }

    [Fact]
    public void GgufNamesMapBackToMetaNames()
    {
        foreach (var (name, _, _) in LlamaLoader.Parameters(LlamaConfig.Tiny))
        {
            string gguf = GgufWriter.ToGgufName(name);
            if (name != LlamaTensorNames.Output) Assert.NotEqual(name, gguf);
            Assert.Equal(name, GgufReader.ToMetaName(gguf));
        }
    }

    [Fact]
    public void PresetsAreValidAndUnknownNamesAreNull()
    {
        foreach (var name in LlamaConfig.PresetNames) LlamaConfig.TryPreset(name)!.Validate();
        Assert.Equal(LlamaConfig.Llama7B, LlamaConfig.TryPreset("llama-7b"));
        Assert.Equal(32, LlamaConfig.TryPreset("llama2-7b")!.NLayers);
        Assert.Null(LlamaConfig.TryPreset("llama-13b"));
    }
}
