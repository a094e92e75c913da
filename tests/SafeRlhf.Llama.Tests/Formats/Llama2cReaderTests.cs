using System.Buffers.Binary;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

public sealed class Llama2cReaderTests
{
    [Fact]
    public void Stories260KHeaderMatchesTheGoldenConfig()
    {
        using var file = Llama2cReader.Read(Stories260K);
        var c = file.Config!;
        var golden = GoldenConfig();
        Assert.Equal(golden.GetProperty("dim").GetInt32(), c.Dim);
        Assert.Equal(golden.GetProperty("hidden_dim").GetInt32(), c.HiddenDim);
        Assert.Equal(golden.GetProperty("n_layers").GetInt32(), c.NLayers);
        Assert.Equal(golden.GetProperty("n_heads").GetInt32(), c.NHeads);
        Assert.Equal(golden.GetProperty("n_kv_heads").GetInt32(), c.NKvHeads);
        Assert.Equal(golden.GetProperty("vocab_size").GetInt32(), c.VocabSize);
        Assert.Equal(golden.GetProperty("seq_len").GetInt32(), c.SeqLen);
        // Documented in ASSETS.md: dim 64, hidden 172, 5 layers, 8 heads, 4 KV heads, vocab 512, shared classifier.
        Assert.Equal((64, 172, 5, 8, 4, 512), (c.Dim, c.HiddenDim, c.NLayers, c.NHeads, c.NKvHeads, c.VocabSize));
        Assert.True(c.TiedEmbeddings);
        Assert.Equal(c, Llama2cReader.ReadConfig(Stories260K));
        var model = c.Validate();
        Assert.True(model.TiedEmbeddings);
        Assert.Equal(c.KvDim, model.KvDim);
    }

    [Fact]
    public void Stories260KTensorsCoverTheWholeFile()
    {
        using var file = WeightFile.Open(Stories260K);
        Assert.Equal(WeightFileFormat.Llama2c, file.Format);
        var c = file.Config!;
        AssertMetaLayout(file, c);
        Assert.Equal(1 + 9 * c.NLayers + 1, file.Tensors.Count);
        Assert.False(file.Contains(LlamaTensorNames.Output));
        Assert.All(file.Tensors, t => Assert.Equal(DType.F32, t.DType));

        long length = new FileInfo(Stories260K).Length;
        Assert.Equal(length, file.ConsumedBytes);
        long freqCis = 2L * c.SeqLen * (c.HeadDim / 2) * sizeof(float);
        Assert.Equal(length, Llama2cReader.HeaderBytes + file.Tensors.Sum(t => (long)t.Data.Length) + freqCis);

        // Tensors follow the file order: the first one starts right after the header.
        var raw = File.ReadAllBytes(Stories260K);
        Assert.True(raw.AsSpan(Llama2cReader.HeaderBytes, 64).SequenceEqual(file[LlamaTensorNames.TokEmbeddings].Data.Span[..64]));
        Assert.True(file.Tensors.SelectMany(t => t.ToSingleArray()).All(float.IsFinite));
    }

    [Fact]
    public void UnsharedClassifierIsReadAfterTheFrequencies()
    {
        using var dir = new TempDir();
        var raw = File.ReadAllBytes(Stories260K);
        var c = Llama2cReader.ReadConfig(Stories260K);
        // Same file with a negative vocab_size and an appended classifier of recognisable values.
        var wcls = new float[c.VocabSize * c.Dim];
        for (int i = 0; i < wcls.Length; i++) wcls[i] = i * 0.5f;
        var bytes = raw.Concat(System.Runtime.InteropServices.MemoryMarshal.AsBytes(wcls.AsSpan()).ToArray()).ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(5 * 4), -c.VocabSize);
        string path = dir.File("unshared.bin");
        File.WriteAllBytes(path, bytes);
        using var file = Llama2cReader.Read(path);
        Assert.False(file.Config!.TiedEmbeddings);
        AssertMetaLayout(file, file.Config);
        Assert.Equal(wcls, file[LlamaTensorNames.Output].ToSingleArray());
        Assert.Equal(bytes.Length, file.ConsumedBytes);
    }

    [Fact]
    public void TruncatedFileNamesTheTensorThatDoesNotFit()
    {
        using var dir = new TempDir();
        var raw = File.ReadAllBytes(Stories260K);
        using (var file = Llama2cReader.Read(Stories260K))
        {
            // Cut in the middle of the last layer's w3.
            var c = file.Config!;
            var w3 = LlamaTensorNames.W3(c.NLayers - 1);
            long end = Llama2cReader.HeaderBytes + file.Tensors.TakeWhile(t => t.Name != w3).Sum(t => (long)t.Data.Length) + 100;
            string path = dir.File("truncated.bin");
            File.WriteAllBytes(path, raw.AsSpan(0, (int)end).ToArray());
            AssertThrowsNaming(() => Llama2cReader.Read(path), path, w3, "past the end");
        }
        string header = dir.File("header-only.bin");
        File.WriteAllBytes(header, raw.AsSpan(0, 20).ToArray());
        AssertThrowsNaming(() => Llama2cReader.Read(header), header, null, "truncated");
    }

    [Fact]
    public void CorruptHeadersAreRejected()
    {
        using var dir = new TempDir();
        var raw = File.ReadAllBytes(Stories260K);

        string Variant(string name, Action<byte[]> change)
        {
            var copy = (byte[])raw.Clone();
            change(copy);
            string path = dir.File(name);
            File.WriteAllBytes(path, copy);
            return path;
        }

        // n_heads that does not divide dim.
        var heads = Variant("heads.bin", b => BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(3 * 4), 7));
        AssertThrowsNaming(() => Llama2cReader.Read(heads), heads, null, "n_heads");
        // A versioned export's magic.
        var versioned = Variant("versioned.bin", b => "ak42"u8.ToArray().Reverse().ToArray().CopyTo(b, 0));
        AssertThrowsNaming(() => Llama2cReader.Read(versioned), versioned, null, "ak42");
        // Trailing bytes: the header does not describe the file.
        string trailing = dir.File("trailing.bin");
        File.WriteAllBytes(trailing, raw.Concat(new byte[12]).ToArray());
        AssertThrowsNaming(() => Llama2cReader.Read(trailing), trailing, null, "12 bytes follow");
        // Empty file.
        string empty = dir.File("empty.bin");
        File.WriteAllBytes(empty, []);
        AssertThrowsNaming(() => Llama2cReader.Read(empty), empty, null, "empty");
    }

    [Fact]
    public void MissingTensorLookupNamesFileAndTensor()
    {
        using var file = Llama2cReader.Read(Stories260K);
        AssertThrowsNaming(() => _ = file["layers.99.attention.wq.weight"], Stories260K, "layers.99.attention.wq.weight");
    }

    [Fact]
    public void DataIsUnavailableAfterDispose()
    {
        var file = Llama2cReader.Read(Stories260K);
        var data = file[LlamaTensorNames.Norm].Data;
        Assert.Equal(data.Length, data.Span.Length);
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => data.Span.Length);
    }
}
