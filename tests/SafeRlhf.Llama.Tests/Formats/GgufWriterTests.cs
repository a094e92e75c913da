using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

/// <summary>GgufWriter and WeightEncoder against the readers and the backends.</summary>
public sealed class GgufWriterTests
{
    [Fact]
    public void WrittenFileReadsBackWithEveryMetadataAndTensorType()
    {
        using var dir = new TempDir();
        string path = dir.File("x.gguf");
        var rng = new Rng(4);
        var tensors = new[]
        {
            RandomTensor(rng, "a.f32", DType.F32, 3, 5),
            RandomTensor(rng, "b.f16", DType.F16, 7),
            RandomTensor(rng, "c.bf16", DType.BF16, 2, 3, 4),
            RandomTensor(rng, "d.q8", DType.Q8_0, 2, 64),
            RandomTensor(rng, "e.q4", DType.Q4_0, 3, 32),
            RandomTensor(rng, "f.f64", DType.F64, 1),
            RandomTensor(rng, "g.i32", DType.I32, 5),
        };
        var metadata = new List<KeyValuePair<string, object>>
        {
            new("s", "text ✓"), new("b", true), new("u8", (byte)7), new("i32", -3), new("u32", 4u), new("i64", -5L),
            new("u64", ulong.MaxValue), new("f32", 0.5f), new("f64", 1e-6), new("list", new[] { "x", "", "zz" }),
        };
        GgufWriter.Write(path, metadata, tensors.Select(t => new StreamedTensor(t.Name, t.DType, t.Dims, s => s.Write(t.Data.Span))).ToList());

        using var file = GgufReader.Read(path, metaNames: false);
        Assert.Equal(new FileInfo(path).Length, file.ConsumedBytes);
        foreach (var (key, value) in metadata) Assert.Equal(value, file.Metadata[key]);
        Assert.Equal(tensors.Select(t => t.Name), file.Tensors.Select(t => t.Name));
        foreach (var t in tensors)
        {
            Assert.Equal(t.DType, file[t.Name].DType);
            Assert.Equal(t.Dims, file[t.Name].Dims);
            Assert.Equal(t.Data.ToArray(), file[t.Name].Data.ToArray());
        }
        Assert.Empty(Directory.EnumerateFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void ATensorThatWritesTheWrongByteCountFailsAndLeavesNoFile()
    {
        using var dir = new TempDir();
        string path = dir.File("bad.gguf");
        var e = Assert.Throws<InvalidOperationException>(() => GgufWriter.Write(path, [],
            [new StreamedTensor("w", DType.F32, [4], s => s.Write(new byte[12]))]));
        Assert.Contains("'w'", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
        Assert.Throws<ArgumentException>(() => GgufWriter.Write(path, [new("k", 1), new("k", 2)], []));
        Assert.Throws<ArgumentException>(() => GgufWriter.Write(path, [new("k", new object())], []));
    }

    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void HalfEncodingsEqualTheBackendsConversion(DType dtype)
    {
        var rng = new Rng(2);
        var values = new float[4096];
        for (int i = 0; i < values.Length; i++) values[i] = (float)rng.Normal(0, i < 2048 ? 0.02 : 300);
        values[0] = 0;
        values[1] = -0f;
        values[2] = float.PositiveInfinity;
        values[3] = 1e-30f;
        var encoded = new byte[values.Length * 2];
        WeightEncoder.Encode(dtype, values, encoded);
        using var x = Tensor.FromArray(TestDevices.Reference, values, values.Length);
        using var y = x.Cast(dtype);
        Assert.Equal(y.ToBytes(), encoded);
    }
}
