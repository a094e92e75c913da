namespace SafeRlhf.Llama.Formats;

/// <summary>Checks of the <see cref="LlamaConfig"/> a weight file states (llama2.c header, HF config.json, GGUF llama.* keys),
/// made before anything is allocated: errors name the file.</summary>
public static class LlamaHeaderChecks
{
    /// <summary>Throws a <see cref="WeightFormatException"/> naming <paramref name="path"/> when the numbers are inconsistent
    /// (<see cref="LlamaConfig.Inconsistency"/>).</summary>
    public static LlamaConfig ValidateHeader(this LlamaConfig c, string path) => c.Inconsistency() is { } message
        ? throw new WeightFormatException(path, null, $"invalid model header: {message} ({c})")
        : c;

    /// <summary>Number of tensors a model of this configuration has (<see cref="LlamaTensorNames.Expected"/>).</summary>
    public static long TensorCount(this LlamaConfig c) => 2 + 9L * c.NLayers + (c.TiedEmbeddings ? 0 : 1);

    /// <summary>Throws a <see cref="WeightFormatException"/> naming <paramref name="path"/> when the file, which holds
    /// <paramref name="tensorCount"/> tensors (0: a vocabulary-only file, not checked) in <paramref name="bytes"/> bytes,
    /// cannot hold a model of this configuration: more layers than tensors, or more parameters than the bytes at
    /// <paramref name="minBytesPerParameter"/> each. Checked before anything is allocated per layer.</summary>
    public static LlamaConfig CheckFits(this LlamaConfig c, string path, long tensorCount, long bytes, double minBytesPerParameter)
    {
        if (tensorCount == 0) return c;
        if (c.NLayers > tensorCount)
            throw new WeightFormatException(path, null,
                $"the configuration has {c.NLayers} layers ({c.TensorCount()} tensors), the file holds only {tensorCount} tensors");
        double needed = c.Parameters * minBytesPerParameter;
        if (needed > bytes)
            throw new WeightFormatException(path, null,
                $"the configuration ({c}) needs at least {needed:G4} bytes of weights, the file holds {bytes}");
        return c;
    }
}
