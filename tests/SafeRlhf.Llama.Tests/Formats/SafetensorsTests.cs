using System.Buffers.Binary;
using System.Text;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

public sealed class SafetensorsTests
{
    private static string Golden => Assets.Require("golden/stories260K_train_golden.safetensors");

    [Fact]
    public void GoldenFileAgreesWithTheStories260KHeader()
    {
        var c = Llama2cReader.ReadConfig(Stories260K);
        using var file = WeightFile.Open(Golden);
        Assert.Equal(WeightFileFormat.Safetensors, file.Format);
        Assert.Equal(new FileInfo(Golden).Length, file.ConsumedBytes);

        // grad.<param> for every parameter (tied classifier: no grad.output.weight).
        AssertMetaLayout(file, c, prefix: "grad.", exact: false);
        Assert.Equal(LlamaTensorNames.Expected(c).Count, file.Tensors.Count(t => t.Name.StartsWith("grad.", StringComparison.Ordinal)));
        Assert.False(file.Contains("grad." + LlamaTensorNames.Output));

        var tokens = file["tokens"];
        Assert.Equal(DType.I32, tokens.DType);
        Assert.Equal(2, tokens.Dims.Length);
        Assert.All(tokens.ToInt32Array(), id => Assert.InRange(id, 0, c.VocabSize - 1));
        var logits = file["logits"];
        Assert.Equal([tokens.Dims[0], tokens.Dims[1] - 1, c.VocabSize], logits.Dims);
        var loss = file["loss"];
        Assert.Equal(1, loss.Numel);
        // Mean next-token cross-entropy is positive and below that of a uniform guess… times a generous factor.
        Assert.InRange(loss.ToDoubleArray()[0], 0, 3 * Math.Log(c.VocabSize));
        Assert.Contains("tied", file.Metadata.Keys);
        Assert.All(file.Metadata.Values, v => Assert.IsType<string>(v));
    }

    [Fact]
    public void WriteThenReadIsByteIdentical()
    {
        using var dir = new TempDir();
        var rng = new Rng(11);
        var tensors = new[]
        {
            RandomTensor(rng, "a.f32", DType.F32, 3, 5),
            RandomTensor(rng, "b.f64", DType.F64, 7),
            RandomTensor(rng, "c.f16", DType.F16, 2, 3, 4),
            RandomTensor(rng, "d.bf16", DType.BF16, 9, 1),
            RandomTensor(rng, "e.i32", DType.I32, 4, 4),
            RandomTensor(rng, "f.scalar", DType.F32),
            RandomTensor(rng, "g.empty", DType.F32, 0, 3),
            RandomTensor(rng, "h.q8_0", DType.Q8_0, 2, 64),         // this engine's extension: ggml blocks as stored
            RandomTensor(rng, "i.q4_0", DType.Q4_0, 3, 32),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcödé \"quoted\"" };
        string path = dir.File("random.safetensors");
        Safetensors.Write(path, tensors, metadata);
        using (var file = Safetensors.Read(path))
        {
            Assert.Equal(tensors.Select(t => t.Name), file.Tensors.Select(t => t.Name));
            foreach (var t in tensors)
            {
                var r = file[t.Name];
                Assert.Equal(t.DType, r.DType);
                Assert.Equal(t.Dims, r.Dims);
                Assert.True(t.Data.Span.SequenceEqual(r.Data.Span), t.Name);
            }
            Assert.Equal(metadata, file.Metadata.ToDictionary(kv => kv.Key, kv => (string)kv.Value));
            Assert.Equal(new FileInfo(path).Length, file.ConsumedBytes);

            // Writing what was read gives the same bytes, also over the file that is still mapped.
            string again = dir.File("again.safetensors");
            Safetensors.Write(again, file.Tensors, metadata);
            Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
            Safetensors.Write(path, file.Tensors.Reverse(), metadata);
        }
        Assert.Single(Directory.GetFiles(dir.Path, "random*"));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        using var reversed = Safetensors.Read(path);
        Assert.Equal(tensors.Reverse().Select(t => t.Name), reversed.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void HeaderIsAlignedJson()
    {
        using var dir = new TempDir();
        string path = dir.File("aligned.safetensors");
        Safetensors.Write(path, [RandomTensor(new Rng(1), "x", DType.F32, 3)]);
        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, (8 + n) % 8);
        Assert.StartsWith("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", Safetensors.ReadHeaderJson(path));
    }

    [Fact]
    public void FloatConversionsFollowTheDType()
    {
        using var dir = new TempDir();
        float[] values = [1f, -2.5f, 0.1f, 65504f, 1e-3f];
        var f16 = values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray();
        var bf16 = values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToInt32Bits(v) >>> 16))).ToArray();
        var f64 = values.SelectMany(v => BitConverter.GetBytes((double)v)).ToArray();
        string path = dir.File("conv.safetensors");
        Safetensors.Write(path, [new RawTensor("h", DType.F16, [5], f16), new RawTensor("b", DType.BF16, [5], bf16), new RawTensor("d", DType.F64, [5], f64)]);
        using var file = Safetensors.Read(path);
        Assert.Equal(values.Select(v => (float)(Half)v), file["h"].ToSingleArray());
        Assert.Equal(values.Select(v => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) & unchecked((int)0xFFFF0000))), file["b"].ToSingleArray());
        Assert.Equal(values.Select(v => (double)v), file["d"].ToDoubleArray());
    }

    /// <summary>Writes a safetensors file with a hand-made header.</summary>
    private static string Handmade(TempDir dir, string name, string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        string path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Int64IsNarrowedToInt32()
    {
        using var dir = new TempDir();
        long[] values = [0, -1, int.MaxValue, int.MinValue, 42];
        var data = values.SelectMany(BitConverter.GetBytes).ToArray();
        string ok = Handmade(dir, "i64.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[5],\"data_offsets\":[0,40]}}", data);
        using (var file = Safetensors.Read(ok))
        {
            Assert.Equal(DType.I32, file["ids"].DType);
            Assert.Equal(values.Select(v => (int)v), file["ids"].ToInt32Array());
        }
        data[8 * 4 + 4] = 1; // 42 + 2^32
        string big = Handmade(dir, "big.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[5],\"data_offsets\":[0,40]}}", data);
        AssertThrowsNaming(() => Safetensors.Read(big), big, "ids", "does not fit");
    }

    [Fact]
    public void CorruptFilesNameFileAndTensor()
    {
        using var dir = new TempDir();
        var data = new byte[64];
        string unknown = Handmade(dir, "dtype.safetensors", "{\"w\":{\"dtype\":\"Q9_Z\",\"shape\":[4],\"data_offsets\":[0,16]}}", data);
        AssertThrowsNaming(() => Safetensors.Read(unknown), unknown, "w", "Q9_Z");
        string past = Handmade(dir, "past.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"w\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[16,144]}}", data);
        AssertThrowsNaming(() => Safetensors.Read(past), past, "w", "past the end");
        string size = Handmade(dir, "size.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", data);
        AssertThrowsNaming(() => Safetensors.Read(size), size, "w", "needs 12");
        string json = Handmade(dir, "json.safetensors", "{\"w\":{\"dtype\":\"F32\",", data);
        AssertThrowsNaming(() => Safetensors.Read(json), json, null, "not JSON");

        // Not a safetensors file at all: the "header length" is absurd.
        string magic = dir.File("magic.safetensors");
        File.WriteAllBytes(magic, Encoding.ASCII.GetBytes("GGUF and then some bytes that are no header"));
        AssertThrowsNaming(() => Safetensors.Read(magic), magic, null, "not a safetensors file");

        // A real file cut short: the last tensor no longer fits.
        var golden = File.ReadAllBytes(Golden);
        string truncated = dir.File("truncated.safetensors");
        File.WriteAllBytes(truncated, golden.AsSpan(0, golden.Length - 3).ToArray());
        string lastTensor;
        using (var file = Safetensors.Read(Golden)) lastTensor = file.Tensors[^1].Name;
        AssertThrowsNaming(() => Safetensors.Read(truncated), truncated, lastTensor, "past the end");
        string cut = dir.File("cut.safetensors");
        File.WriteAllBytes(cut, golden.AsSpan(0, 100).ToArray());
        AssertThrowsNaming(() => Safetensors.Read(cut), cut, null);
    }

    [Fact]
    public void WriterRejectsWhatItCannotStore()
    {
        using var dir = new TempDir();
        var rng = new Rng(3);
        Assert.Throws<ArgumentException>(() => Safetensors.Write(dir.File("d.safetensors"), [RandomTensor(rng, "x", DType.F32, 2), RandomTensor(rng, "x", DType.F32, 2)]));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}
