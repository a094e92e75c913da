namespace SafeRlhf.TestSupport.Fuzz;

/// <summary>What a fuzzed file is, which decides the structure-aware mutations applied to it.</summary>
public enum FuzzInputKind
{
    /// <summary>A binary format with a header of little-endian integers (llama2.c, GGUF, safetensors, tokenizers).</summary>
    Binary,
    /// <summary>One JSON document (configs, indexes, trainer state).</summary>
    Json,
    /// <summary>JSON lines (datasets).</summary>
    JsonLines,
    /// <summary>Gzip-compressed JSON lines: the compressed bytes or the decompressed lines are mutated.</summary>
    GzipJsonLines,
}
