using System.Buffers.Binary;
using System.Text;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Llama.Tests.Formats.FormatTestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

public sealed class GgufReaderTests
{
    private static string TinyGguf => Assets.Require("models/llama-2-tiny-random.gguf");

    [Fact]
    public void ReadsTheLlamaConfigFromMetadata()
    {
        using var file = WeightFile.Open(TinyGguf);
        Assert.Equal(WeightFileFormat.Gguf, file.Format);
        Assert.Equal("llama", file.Metadata["general.architecture"]);
        var c = file.Config!;
        // Documented in ASSETS.md: dim 8, 1 layer, 2 heads, FFN 32, the 32000-token LLaMA-2 vocabulary.
        Assert.Equal((8, 1, 2, 32, 32000), (c.Dim, c.NLayers, c.NHeads, c.HiddenDim, c.VocabSize));
        Assert.Equal(Convert.ToInt32(file.Metadata["llama.context_length"]), c.SeqLen);
        Assert.Equal(Convert.ToInt32(file.Metadata["llama.attention.head_count_kv"]), c.NKvHeads);
        Assert.Equal((float)file.Metadata["llama.attention.layer_norm_rms_epsilon"], c.NormEps);
        Assert.Equal(c.HeadDim, Convert.ToInt32(file.Metadata["llama.rope.dimension_count"]));
        Assert.False(c.TiedEmbeddings);
        Assert.Equal(1u, file.Metadata["tokenizer.ggml.bos_token_id"]);
    }

    [Fact]
    public void TensorsHaveMetaNamesReversedDimsAndCoverTheFile()
    {
        using var file = GgufReader.Read(TinyGguf);
        var c = file.Config!;
        AssertMetaLayout(file, c);
        // F16 matrices, F32 norms.
        Assert.All(file.Tensors, t => Assert.Equal(t.Dims.Length == 2 ? DType.F16 : DType.F32, t.DType));
        Assert.Equal(new FileInfo(TinyGguf).Length, file.ConsumedBytes);
        Assert.True(file.Tensors.SelectMany(t => t.ToSingleArray()).All(float.IsFinite));

        using var raw = GgufReader.Read(TinyGguf, metaNames: false);
        Assert.Equal(file.Tensors.Select(t => t.Name), raw.Tensors.Select(t => GgufReader.ToMetaName(t.Name)));
        Assert.Equal([c.VocabSize, c.Dim], raw["token_embd.weight"].Dims);
        Assert.Equal([c.Dim, c.HiddenDim], raw["blk.0.ffn_down.weight"].Dims);
        Assert.Equal(c, raw.Config);
    }

    [Fact]
    public void VocabularyIsTheLlamaSentencePieceVocabulary()
    {
        using var file = GgufReader.Read(TinyGguf);
        var tokens = Assert.IsType<string[]>(file.Metadata["tokenizer.ggml.tokens"]);
        var scores = Assert.IsType<float[]>(file.Metadata["tokenizer.ggml.scores"]);
        var types = Assert.IsType<int[]>(file.Metadata["tokenizer.ggml.token_type"]);
        Assert.Equal(file.Config!.VocabSize, tokens.Length);
        var model = SentencePieceModel.Load(Assets.Require("tokenizer/llama_tokenizer.model"));
        Assert.Equal(model.Pieces.Count, tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            Assert.Equal(model.Pieces[i].Piece, tokens[i]);
            Assert.Equal(model.Pieces[i].Score, scores[i]);
            Assert.Equal((int)model.Pieces[i].Type, types[i]);
        }
    }

    private static int FindTensorInfo(byte[] bytes, string name)
    {
        var pattern = new byte[8 + name.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(pattern, (ulong)name.Length);
        Encoding.UTF8.GetBytes(name).CopyTo(pattern, 8);
        int at = bytes.AsSpan().IndexOf(pattern);
        Assert.True(at > 0, $"tensor info of {name} not found");
        return at + pattern.Length; // at n_dims
    }

    private static string Corrupt(TempDir dir, string fileName, Action<byte[]> change)
    {
        var bytes = File.ReadAllBytes(TinyGguf);
        change(bytes);
        string path = dir.File(fileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void CorruptFilesNameTheFileAndTensor()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(TinyGguf);

        var magic = Corrupt(dir, "magic.gguf", b => b[0] = (byte)'X');
        AssertThrowsNaming(() => GgufReader.Read(magic), magic, null, "not a GGUF file");
        var version = Corrupt(dir, "version.gguf", b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 1));
        AssertThrowsNaming(() => GgufReader.Read(version), version, null, "version 1");

        // Unknown ggml type in a tensor info: n_dims u32, n_dims × u64, type u32.
        const string q = "blk.0.attn_q.weight";
        var dtype = Corrupt(dir, "dtype.gguf", b =>
        {
            int at = FindTensorInfo(b, q);
            int nDims = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(at));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at + 4 + 8 * nDims), 99);
        });
        AssertThrowsNaming(() => GgufReader.Read(dtype), dtype, q, "type 99");

        // A data offset beyond the end of the file.
        const string output = "output.weight";
        var past = Corrupt(dir, "past.gguf", b =>
        {
            int at = FindTensorInfo(b, output);
            int nDims = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(at));
            BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 4 + 8 * nDims + 4), (ulong)b.Length / 32 * 32);
        });
        AssertThrowsNaming(() => GgufReader.Read(past), past, output, "past the end");

        // Truncated: the last tensor in the data section no longer fits.
        string lastTensor;
        using (var raw = GgufReader.Read(TinyGguf, metaNames: false))
            lastTensor = raw.Tensors.MaxBy(t => bytes.AsSpan().IndexOf(t.Data.Span) + (long)t.Data.Length)!.Name;
        string truncated = dir.File("truncated.gguf");
        File.WriteAllBytes(truncated, bytes.AsSpan(0, bytes.Length - 10).ToArray());
        AssertThrowsNaming(() => GgufReader.Read(truncated), truncated, lastTensor, "past the end");

        // Cut inside the metadata: the key being read is named.
        string header = dir.File("header.gguf");
        int tokensKey = bytes.AsSpan().IndexOf("tokenizer.ggml.tokens"u8);
        File.WriteAllBytes(header, bytes.AsSpan(0, tokensKey + 100).ToArray());
        AssertThrowsNaming(() => GgufReader.Read(header), header, "tokenizer.ggml.tokens", "truncated");

        // Unknown metadata value type.
        var valueType = Corrupt(dir, "value.gguf", b =>
        {
            int at = b.AsSpan().IndexOf("general.name"u8) + "general.name".Length;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), 77);
        });
        AssertThrowsNaming(() => GgufReader.Read(valueType), valueType, "general.name", "unknown metadata value type 77");
    }

    /// <summary>A GGUF v3 file written by hand: every metadata value type, a custom alignment, quantized tensors.</summary>
    [Fact]
    public void HandWrittenFileWithEveryValueTypeAndQuantizedTensors()
    {
        const int alignment = 64;
        var rng = new Rng(9);
        byte[] Random(int n)
        {
            var b = new byte[n];
            for (int i = 0; i < n; i++) b[i] = (byte)rng.NextUInt64();
            return b;
        }
        var tensors = new (string Name, ulong[] Ne, uint Type, byte[] Data)[]
        {
            ("q8", [64, 2], 8, Random(2 * 2 * DTypeInfo.Q8_0BlockBytes)),
            ("q4", [32, 3], 2, Random(3 * DTypeInfo.Q4_0BlockBytes)),
            ("f32", [5], 0, Random(5 * 4)),
        };

        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            void Str(string s)
            {
                var b = Encoding.UTF8.GetBytes(s);
                w.Write((ulong)b.Length);
                w.Write(b);
            }
            var kvs = new List<(string Key, uint Type, Action Value)>
            {
                ("u8", 0, () => w.Write((byte)200)),
                ("i8", 1, () => w.Write((sbyte)-5)),
                ("u16", 2, () => w.Write((ushort)60000)),
                ("i16", 3, () => w.Write((short)-300)),
                ("u32", 4, () => w.Write(4_000_000_000u)),
                ("i32", 5, () => w.Write(-7)),
                ("f32", 6, () => w.Write(1.5f)),
                ("bool", 7, () => w.Write((byte)1)),
                ("str", 8, () => Str("héllo")),
                ("u64", 10, () => w.Write(1UL << 40)),
                ("i64", 11, () => w.Write(-(1L << 40))),
                ("f64", 12, () => w.Write(2.25)),
                ("ints", 9, () => { w.Write(5u); w.Write(3UL); w.Write(1); w.Write(2); w.Write(3); }),
                ("strs", 9, () => { w.Write(8u); w.Write(2UL); Str("a"); Str("bc"); }),
                ("nested", 9, () => { w.Write(9u); w.Write(2UL); w.Write(0u); w.Write(2UL); w.Write((byte)1); w.Write((byte)2); w.Write(0u); w.Write(1UL); w.Write((byte)3); }),
                ("general.alignment", 4, () => w.Write((uint)alignment)),
            };
            w.Write(GgufReader.Magic);
            w.Write(3u);
            w.Write((ulong)tensors.Length);
            w.Write((ulong)kvs.Count);
            foreach (var (key, type, value) in kvs)
            {
                Str(key);
                w.Write(type);
                value();
            }
            ulong offset = 0;
            foreach (var (name, ne, type, data) in tensors)
            {
                Str(name);
                w.Write((uint)ne.Length);
                foreach (var n in ne) w.Write(n);
                w.Write(type);
                w.Write(offset);
                offset += ((ulong)data.Length + alignment - 1) / alignment * alignment;
            }
            w.Flush();
            foreach (var (_, _, _, data) in tensors)
            {
                while (buffer.Length % alignment != 0) w.Write((byte)0);
                w.Write(data);
            }
        }

        using var dir = new TempDir();
        string path = dir.File("hand.gguf");
        File.WriteAllBytes(path, buffer.ToArray());
        using var file = GgufReader.Read(path);
        var m = file.Metadata;
        Assert.Equal((byte)200, m["u8"]);
        Assert.Equal((sbyte)-5, m["i8"]);
        Assert.Equal((ushort)60000, m["u16"]);
        Assert.Equal((short)-300, m["i16"]);
        Assert.Equal(4_000_000_000u, m["u32"]);
        Assert.Equal(-7, m["i32"]);
        Assert.Equal(1.5f, m["f32"]);
        Assert.Equal(true, m["bool"]);
        Assert.Equal("héllo", m["str"]);
        Assert.Equal(1UL << 40, m["u64"]);
        Assert.Equal(-(1L << 40), m["i64"]);
        Assert.Equal(2.25, m["f64"]);
        Assert.Equal(new[] { 1, 2, 3 }, m["ints"]);
        Assert.Equal(new[] { "a", "bc" }, m["strs"]);
        var nested = Assert.IsType<object[]>(m["nested"]);
        Assert.Equal(new byte[] { 1, 2 }, nested[0]);
        Assert.Equal(new byte[] { 3 }, nested[1]);
        Assert.Null(file.Config);
        Assert.Equal(buffer.Length, file.ConsumedBytes);

        var expectedTypes = new[] { DType.Q8_0, DType.Q4_0, DType.F32 };
        for (int i = 0; i < tensors.Length; i++)
        {
            var t = file.Tensors[i];
            Assert.Equal(tensors[i].Name, t.Name);
            Assert.Equal(tensors[i].Ne.Reverse().Select(n => (int)n), t.Dims);
            Assert.Equal(expectedTypes[i], t.DType);
            Assert.Equal(tensors[i].Data, t.Data.ToArray());
        }
    }
}
