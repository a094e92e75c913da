using SafeRlhf.Tensors;
using static SafeRlhf.Llama.Formats.LlamaTensorNames;

namespace SafeRlhf.Llama.Formats;

/// <summary>Reads llama2.c legacy (version 0) checkpoints: a header of 7 int32
/// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means an unshared
/// classifier follows), then fp32 weights in llama2.c order, each stacked over layers: token_embedding, rms_att,
/// wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag (skipped), optional wcls.
/// Tensors come out under Meta names, matrices as [out, in].</summary>
public static class Llama2cReader
{
    /// <summary>Header size in bytes.</summary>
    public const int HeaderBytes = 7 * sizeof(int);

    /// <summary>First int32 of llama2.c version 1/2 exports ("ak42"), which this reader does not handle.</summary>
    private const uint VersionedMagic = 0x616b3432;

    public static WeightFile Read(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Read(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads only the 7-int header.</summary>
    public static LlamaConfig ReadConfig(string path)
    {
        using var file = MappedFile.Open(path);
        return ReadHeader(new ByteReader(file) { Context = "header" }, path);
    }

    private static LlamaConfig ReadHeader(ByteReader r, string path)
    {
        if (r.Remaining >= 4 && (uint)r.ReadInt32() == VersionedMagic)
            throw new WeightFormatException(path, null, "llama2.c versioned export (magic \"ak42\") is not supported; export with --version 0 (legacy)");
        r.Position = 0;
        int dim = r.ReadInt32(), hidden = r.ReadInt32(), layers = r.ReadInt32(), heads = r.ReadInt32(),
            kvHeads = r.ReadInt32(), vocab = r.ReadInt32(), seqLen = r.ReadInt32();
        if (vocab == int.MinValue) throw new WeightFormatException(path, null, "invalid vocab_size in header");
        return new LlamaConfig
        {
            Dim = dim, HiddenDim = hidden, NLayers = layers, NHeads = heads, NKvHeads = kvHeads,
            VocabSize = Math.Abs(vocab), SeqLen = seqLen, NormEps = 1e-5, RopeTheta = 10000.0, TiedEmbeddings = vocab > 0,
        }.ValidateHeader(path);
    }

    private static WeightFile Read(MappedFile file)
    {
        string path = file.Path;
        var r = new ByteReader(file) { Context = "header" };
        var c = ReadHeader(r, path);
        // Every tensor takes at least 4 bytes: a layer count the file cannot hold is refused before anything is built.
        if (c.TensorCount() > (file.Length - HeaderBytes) / 4)
            throw new WeightFormatException(path, null,
                $"n_layers {c.NLayers} implies {c.TensorCount()} tensors, more than a file of {file.Length} bytes can hold ({c})");
        var tensors = new List<RawTensor>();

        void Stacked(Func<int, string> name, params int[] dims)
        {
            for (int l = 0; l < c.NLayers; l++) tensors.Add(Next(file, r, name(l), dims));
        }

        tensors.Add(Next(file, r, TokEmbeddings, c.VocabSize, c.Dim));
        Stacked(AttentionNorm, c.Dim);
        Stacked(Wq, c.Dim, c.Dim);
        Stacked(Wk, c.KvDim, c.Dim);
        Stacked(Wv, c.KvDim, c.Dim);
        Stacked(Wo, c.Dim, c.Dim);
        Stacked(FfnNorm, c.Dim);
        Stacked(W1, c.HiddenDim, c.Dim);
        Stacked(W2, c.Dim, c.HiddenDim);
        Stacked(W3, c.HiddenDim, c.Dim);
        tensors.Add(Next(file, r, Norm, c.Dim));
        Next(file, r, "freq_cis_real", c.SeqLen, c.HeadDim / 2);
        Next(file, r, "freq_cis_imag", c.SeqLen, c.HeadDim / 2);
        if (!c.TiedEmbeddings) tensors.Add(Next(file, r, Output, c.VocabSize, c.Dim));
        if (r.Remaining != 0)
            throw new WeightFormatException(path, null,
                $"{r.Remaining} bytes follow the last tensor; the header ({c}) does not describe this file");

        var metadata = new Dictionary<string, object>
        {
            ["dim"] = c.Dim, ["hidden_dim"] = c.HiddenDim, ["n_layers"] = c.NLayers, ["n_heads"] = c.NHeads,
            ["n_kv_heads"] = c.NKvHeads, ["vocab_size"] = c.VocabSize, ["seq_len"] = c.SeqLen, ["shared_classifier"] = c.TiedEmbeddings,
        };
        return new WeightFile(path, WeightFileFormat.Llama2c, metadata, tensors, c, r.Position, file);
    }

    private static RawTensor Next(MappedFile file, ByteReader r, string name, params int[] dims)
    {
        long bytes = RawTensor.ByteCount(DType.F32, dims);
        if (bytes > r.Remaining)
            throw new WeightFormatException(file.Path, name,
                $"extends past the end of the file: needs bytes [{r.Position}, {r.Position + bytes}), the file has {file.Length}");
        if (bytes > int.MaxValue)
            throw new WeightFormatException(file.Path, name, $"{bytes} bytes exceed the 2 GiB limit of one tensor");
        var data = file.Memory(r.Position, (int)bytes);
        r.Position += bytes;
        return new RawTensor(name, DType.F32, dims, data);
    }
}
