using System.Text.Json;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

/// <summary>A temporary folder, deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "saferlhf-formats-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

internal static class FormatTestSupport
{
    public static string Stories260K => Assets.Require("models/stories260K.bin");

    /// <summary>The model config that the llama2.c golden files state (the documented stories260K numbers).</summary>
    public static JsonElement GoldenConfig()
    {
        var file = Assets.Glob("golden", "stories260K_llama2c_*.json")[0];
        using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
        return doc.RootElement.GetProperty("config").Clone();
    }

    /// <summary>The file has exactly the Meta parameters of its config, with their shapes (under a name prefix).</summary>
    public static void AssertMetaLayout(WeightFile file, LlamaConfig config, string prefix = "", bool exact = true)
    {
        var expected = LlamaTensorNames.Expected(config);
        foreach (var (name, dims) in expected)
        {
            Assert.True(file.TryGetTensor(prefix + name, out var t), $"{file.Path} lacks {prefix + name}");
            Assert.Equal(dims, t.Dims);
            Assert.Equal(RawTensor.ByteCount(t.DType, dims), t.Data.Length);
        }
        if (exact) Assert.Equal(expected.Count, file.Tensors.Count);
    }

    public static void AssertThrowsNaming(Action read, string path, string? tensor, string? messagePart = null)
    {
        var e = Assert.Throws<WeightFormatException>(read);
        Assert.Contains(path, e.Message);
        Assert.Equal(path, e.FilePath);
        if (tensor is not null)
        {
            Assert.Equal(tensor, e.TensorName);
            Assert.Contains(tensor, e.Message);
        }
        if (messagePart is not null) Assert.Contains(messagePart, e.Message);
    }

    public static RawTensor RandomTensor(Rng rng, string name, DType dtype, params int[] dims)
    {
        var bytes = new byte[RawTensor.ByteCount(dtype, dims)];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)rng.NextUInt64();
        return new RawTensor(name, dtype, dims, bytes);
    }
}
