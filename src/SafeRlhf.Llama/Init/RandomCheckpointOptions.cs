using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Init;

/// <summary>File formats that <see cref="RandomCheckpoint"/> writes.</summary>
public enum CheckpointFormat
{
    /// <summary>One GGUF file (llama.cpp names and metadata); stores Q8_0, Q4_0 and K-quant blocks as they are.</summary>
    Gguf,
    /// <summary>One safetensors file with the configuration in its metadata, as <see cref="Loading.LlamaCheckpoint"/>
    /// writes it; F32, F16 and BF16 only.</summary>
    Safetensors,
}

/// <summary>What <see cref="RandomCheckpoint"/> writes.</summary>
public sealed record RandomCheckpointOptions
{
    /// <summary>Model seed; each tensor's generator is derived from it and the tensor name.</summary>
    public ulong Seed { get; init; }

    /// <summary>Stored type of the projection and classifier matrices that are not quantized: F32, F16 or BF16.
    /// The embedding and the norm weights are always F32.</summary>
    public DType MatrixType { get; init; } = DType.F32;

    /// <summary>Quantize the projection and classifier matrices to Q8_0 or Q4_0 (GGUF only); a matrix whose row
    /// length is not a multiple of 32 is stored as <see cref="MatrixType"/>. Null: no quantization.</summary>
    public DType? Quantize { get; init; }

    /// <summary>Store the matrices and the token embedding in a llama.cpp K-quant mix (GGUF only; excludes
    /// <see cref="Quantize"/>). Null: no mix.</summary>
    public QuantMix? Mix { get; init; }

    /// <summary>The file format.</summary>
    public CheckpointFormat Format { get; init; } = CheckpointFormat.Gguf;

    /// <summary>A vocabulary written into the GGUF file's tokenizer.ggml.* metadata (GGUF only), so that the file is
    /// self-contained for llama.cpp and for our loaders; it must hold exactly the model's vocabulary size of tokens.
    /// Null: no vocabulary (pass a tokenizer where the model is used).</summary>
    public Export.ExportVocabulary? Vocabulary { get; init; }

    /// <summary>Model name stored in the file (GGUF general.name, safetensors metadata).</summary>
    public string Name { get; init; } = "random";

    /// <summary>Throws an <see cref="ArgumentException"/> naming the option when the combination cannot be written.</summary>
    public RandomCheckpointOptions Validate()
    {
        if (MatrixType is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"matrix type must be F32, F16 or BF16, got {MatrixType}");
        if (Quantize is { } q && q is not (DType.Q8_0 or DType.Q4_0))
            throw new ArgumentException($"quantize: {q} is not a quantized type (Q8_0 and Q4_0 are; K-quants come as a mix)");
        if (Mix is not null && Quantize is not null)
            throw new ArgumentException($"quantize: {Quantize} and the {Mix} mix exclude each other");
        if (Mix is not null && Format == CheckpointFormat.Safetensors)
            throw new ArgumentException($"safetensors cannot store the {Mix} mix: write GGUF");
        if (Quantize is not null && Format == CheckpointFormat.Safetensors)
            throw new ArgumentException($"safetensors cannot store {Quantize} blocks: write GGUF to quantize");
        if (Vocabulary is not null && Format == CheckpointFormat.Safetensors)
            throw new ArgumentException($"safetensors has no vocabulary metadata: write GGUF to store the vocabulary of {Vocabulary.SourcePath}");
        return this;
    }
}
