using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Export;

/// <summary>The file formats <see cref="ModelExporter"/> writes.</summary>
public enum ExportFormat
{
    /// <summary>A Hugging Face folder: config.json (LlamaForCausalLM), model.safetensors (HF names, q/k rows in HF's
    /// rotate-half order, F32), tokenizer.model, tokenizer_config.json, special_tokens_map.json, generation_config.json.</summary>
    HuggingFace,
    /// <summary>One GGUF v3 file (architecture llama, the vocabulary in tokenizer.ggml.*), F32 unless quantized.</summary>
    Gguf,
}

/// <summary>What to export and how.</summary>
public sealed record ExportOptions
{
    public required ExportFormat Format { get; init; }

    /// <summary>Fold LoRA adapters into the base, W + (alpha/r)·B·A. Without it a model that holds adapters is refused:
    /// neither format carries adapters.</summary>
    public bool MergeLora { get; init; }

    /// <summary>GGUF only: store the linear layers' matrices (rows a multiple of 32 long) as Q8_0 or Q4_0, quantized as
    /// <see cref="Loading.LlamaLoadOptions.Quantize"/> does in memory, or as Q4_K (rows a multiple of 256 long; shorter
    /// whole-32 rows fall back to Q8_0, as <c>init --quantize q4_k_m</c> does), encoded by <see cref="KQuantEncoder"/>;
    /// norms and the token embedding stay F32.</summary>
    public DType? Quantize { get; init; }

    /// <summary>general.name (GGUF) and the model's name in tokenizer_config.json.</summary>
    public string Name { get; init; } = "saferlhf-llama";

    /// <summary>The chat template the model was trained with (stored as saferlhf.chat_template in GGUF and, as a
    /// Jinja template, in tokenizer_config.json); null = none stated.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> for a combination that cannot be written.</summary>
    public ExportOptions Validate()
    {
        if (Quantize is { } q && q is not (DType.Q8_0 or DType.Q4_0 or DType.Q4_K))
            throw new ArgumentException($"--quantize: {q} is not supported (q8_0, q4_0, q4_k are)");
        if (Quantize is not null && Format != ExportFormat.Gguf)
            throw new ArgumentException("--quantize applies to --format gguf only (a Hugging Face folder holds F32 weights)");
        return this;
    }
}
