namespace SafeRlhf.Llama.Loading;

/// <summary>What a <c>--model</c> argument names.</summary>
public enum ModelSourceKind
{
    /// <summary>A weight file (.safetensors, .gguf, llama2.c .bin) outside any run.</summary>
    WeightFile,
    /// <summary>A Hugging Face checkpoint folder (config.json with model.safetensors or its index).</summary>
    HuggingFaceFolder,
    /// <summary>A checkpoint-N folder of a run (or its model.safetensors, or the run's <c>latest</c> pointer).</summary>
    Checkpoint,
    /// <summary>A run folder: the final model its result.json names, else its latest checkpoint.</summary>
    Run,
}

/// <summary>A resolved <c>--model</c>: the weights to open and what the run around them says.</summary>
/// <param name="Requested">The path as given.</param>
/// <param name="WeightPath">The file (or Hugging Face folder) that <see cref="Formats.WeightFile.Open"/> reads.</param>
/// <param name="Kind">What the requested path was.</param>
/// <param name="RunFolder">The run the weights belong to (null for a plain weight file).</param>
/// <param name="TokenizerPath">The tokenizer saved with the checkpoint or named by its run (null: none found
/// there; the caller looks beside the weights and in GGUF metadata).</param>
/// <param name="ChatTemplate">The chat template the model was trained with (a checkpoint's safetensors metadata, an
/// exported GGUF's saferlhf.chat_template, or the run's config.json); null when none states one.</param>
public sealed record ModelLocation(string Requested, string WeightPath, ModelSourceKind Kind, string? RunFolder, string? TokenizerPath,
    string? ChatTemplate);
