using System.Globalization;
using System.Security.Cryptography;
using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Loading;

/// <summary>The base model a LoRA checkpoint's adapters were trained on: its absolute path, size in bytes and SHA-256.
/// A checkpoint of adapters only (<see cref="LlamaCheckpoint"/>) stores this reference instead of a copy of the base
/// and loads by reading the base again; a base that is missing or whose size or SHA-256 differs is refused with a
/// <see cref="LoraBaseException"/>. For a Hugging Face folder the size and hash cover its config.json and .safetensors
/// files, in name order, as one stream.</summary>
public sealed record LoraBase(string Path, long Bytes, string Sha256)
{
    /// <summary>Checkpoint metadata keys of the reference.</summary>
    public const string PathKey = "base_model", BytesKey = "base_model_bytes", Sha256Key = "base_model_sha256";

    internal static readonly string[] Keys = [PathKey, BytesKey, Sha256Key];

    /// <summary>The reference of the weight file or Hugging Face folder at <paramref name="path"/> as it is now.</summary>
    public static LoraBase Describe(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        var files = Directory.Exists(full)
            ? Directory.GetFiles(full).Where(f => f.EndsWith(".safetensors", StringComparison.Ordinal) || System.IO.Path.GetFileName(f) == HfCheckpoint.ConfigFile)
                .Order(StringComparer.Ordinal).ToArray()
            : [full];
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long bytes = 0;
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                bytes += n;
            }
        }
        return new LoraBase(full, bytes, Convert.ToHexStringLower(sha.GetHashAndReset()));
    }

    /// <summary>The base of a model loaded from <paramref name="weights"/>: the reference a checkpoint of adapters only
    /// stores, else the file (or folder) itself.</summary>
    public static LoraBase Of(WeightFile weights) => FromMetadata(weights) ?? Describe(weights.Path);

    /// <summary>The reference stored in a checkpoint's metadata, or null when it has none.</summary>
    public static LoraBase? FromMetadata(WeightFile file)
    {
        if (!file.Metadata.TryGetValue(PathKey, out var p) || p is not string path) return null;
        if (!file.Metadata.TryGetValue(BytesKey, out var b) || !long.TryParse(b as string, NumberStyles.None, CultureInfo.InvariantCulture, out long bytes))
            throw new WeightFormatException(file.Path, BytesKey, "metadata is missing or not a byte count");
        if (!file.Metadata.TryGetValue(Sha256Key, out var s) || s is not string sha || sha.Length != 64)
            throw new WeightFormatException(file.Path, Sha256Key, "metadata is missing or not a SHA-256 in hex");
        return new LoraBase(path, bytes, sha);
    }

    internal void WriteTo(IDictionary<string, string> metadata)
    {
        metadata[PathKey] = Path;
        metadata[BytesKey] = Bytes.ToString(CultureInfo.InvariantCulture);
        metadata[Sha256Key] = Sha256;
    }

    /// <summary>Throws <see cref="LoraBaseException"/> naming <paramref name="checkpoint"/> and the base when the base
    /// is missing or is not the file the adapters were trained on.</summary>
    public void Verify(string checkpoint)
    {
        if (!File.Exists(Path) && !Directory.Exists(Path))
            throw new LoraBaseException(checkpoint, Path,
                "is missing; the checkpoint holds LoRA adapters only and needs the base model it was trained on at that path");
        var now = Describe(Path);
        if (now.Bytes != Bytes || now.Sha256 != Sha256)
            throw new LoraBaseException(checkpoint, Path,
                $"is not the base the adapters were trained on ({now.Bytes} bytes, SHA-256 {now.Sha256}; the checkpoint names " +
                $"{Bytes} bytes, SHA-256 {Sha256}); put that file back at this path");
    }
}

/// <summary>A checkpoint of LoRA adapters whose base model is missing or differs from the one it was trained on.</summary>
public sealed class LoraBaseException(string checkpoint, string basePath, string message)
    : InputFormatException(checkpoint, $"{checkpoint}: LoRA base model {basePath} {message}", null)
{
    /// <summary>The base model file (or folder) the checkpoint names.</summary>
    public string BasePath { get; } = basePath;
}
