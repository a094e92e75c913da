using System.Diagnostics.CodeAnalysis;

namespace SafeRlhf.Llama.Formats;

/// <summary>Formats that <see cref="WeightFile.Open"/> reads.</summary>
public enum WeightFileFormat
{
    /// <summary>llama2.c legacy (version 0) checkpoint: 7 int32 header, fp32 weights.</summary>
    Llama2c,
    /// <summary>A single .safetensors file.</summary>
    Safetensors,
    /// <summary>A Hugging Face checkpoint folder (config.json, one or more .safetensors shards).</summary>
    HuggingFace,
    /// <summary>GGUF (version 2 or 3).</summary>
    Gguf,
}

/// <summary>The tensors and metadata of a weight file, independent of any backend. Tensor data may be mapped
/// from the file: keep this object open while it is used, and dispose it to unmap.</summary>
public sealed class WeightFile : IDisposable
{
    private readonly Dictionary<string, RawTensor> _byName;
    private readonly IDisposable[] _owners;

    internal WeightFile(string path, WeightFileFormat format, IReadOnlyDictionary<string, object> metadata,
        IReadOnlyList<RawTensor> tensors, LlamaConfig? config, long consumedBytes, params IDisposable[] owners)
    {
        Path = path;
        Format = format;
        Metadata = metadata;
        Tensors = tensors;
        Config = config;
        ConsumedBytes = consumedBytes;
        _owners = owners;
        _byName = new Dictionary<string, RawTensor>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (!_byName.TryAdd(t.Name, t))
                throw new WeightFormatException(path, t.Name, "the name occurs twice");
    }

    /// <summary>The file (or checkpoint folder) read.</summary>
    public string Path { get; }

    public WeightFileFormat Format { get; }

    /// <summary>Metadata: strings for safetensors; typed values (and typed arrays) for GGUF; header fields for llama2.c.</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<RawTensor> Tensors { get; }

    /// <summary>Model hyper-parameters where the file states them (null for a plain tensor file).</summary>
    public LlamaConfig? Config { get; }

    /// <summary>Bytes of the file accounted for by the header, the tensors and skipped sections (single files).</summary>
    public long ConsumedBytes { get; }

    /// <summary>The tensor of that name; throws a <see cref="WeightFormatException"/> naming file and tensor if absent.</summary>
    public RawTensor this[string name] =>
        _byName.TryGetValue(name, out var t) ? t : throw new WeightFormatException(Path, name, "no such tensor in the file");

    public bool Contains(string name) => _byName.ContainsKey(name);

    public bool TryGetTensor(string name, [MaybeNullWhen(false)] out RawTensor tensor) => _byName.TryGetValue(name, out tensor);

    /// <summary>Reads a weight file, choosing the reader from its content: a folder is a Hugging Face checkpoint,
    /// "GGUF" magic (or a .gguf name, or a magic with one damaged byte) is GGUF, a .safetensors name is safetensors, anything else a llama2.c checkpoint.</summary>
    public static WeightFile Open(string path)
    {
        if (Directory.Exists(path)) return HfCheckpoint.Read(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"weight file not found: {path}", path);
        Span<byte> magic = stackalloc byte[4];
        int n;
        using (var fs = File.OpenRead(path)) n = fs.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (n == 4 && LooksLikeGguf(magic, path)) return GgufReader.Read(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return Safetensors.Read(path);
        return Llama2cReader.Read(path);
    }

    // "GGUF" magic, a .gguf name, or three of the four magic bytes in place (a damaged GGUF file is reported as one).
    private static bool LooksLikeGguf(ReadOnlySpan<byte> magic, string path)
    {
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return true;
        int matching = 0;
        for (int i = 0; i < 4; i++)
            if (magic[i] == "GGUF"u8[i]) matching++;
        return matching >= 3;
    }

    /// <summary>Unmaps the file (tensor data handed out becomes unusable).</summary>
    public void Dispose()
    {
        foreach (var owner in _owners) owner.Dispose();
    }
}
