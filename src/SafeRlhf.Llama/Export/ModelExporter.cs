using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Export;

/// <summary>Exports a LLaMA policy (any file <see cref="ModelLocator"/> resolves) to a Hugging Face folder or a GGUF
/// file with its vocabulary. Score models (reward and cost heads) are refused: neither format has a LLaMA
/// sequence-score model that llama.cpp or LlamaForCausalLM would load. Errors are <see cref="ExportException"/>s (or
/// the readers' <see cref="InputFormatException"/>s) naming the file.</summary>
public static class ModelExporter
{
    /// <summary>The safetensors metadata 'format' of reward and cost models.</summary>
    public const string ScoreModelFormat = "saferlhf-score-model";

    /// <summary>Writes <paramref name="location"/>'s model to <paramref name="outPath"/> (a folder for
    /// <see cref="ExportFormat.HuggingFace"/>, a file for <see cref="ExportFormat.Gguf"/>). The tokenizer is
    /// <paramref name="tokenizerPath"/>, else the location's, else one beside the weights, else a GGUF's own vocabulary.
    /// The model is loaded onto <paramref name="device"/> with its stored types kept.</summary>
    public static void Export(ModelLocation location, string? tokenizerPath, ExportOptions options, Device device, string outPath)
    {
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ExportException(location.Requested, e.Message, e);
        }
        using var weights = WeightFile.Open(location.WeightPath);
        if (weights.Metadata.TryGetValue("format", out var format) && format as string == ScoreModelFormat)
            throw new ExportException(location.WeightPath,
                "is a score model (reward or cost: a LLaMA backbone with a scalar head); only policies export, as a Hugging Face " +
                "LlamaForCausalLM folder or a llama GGUF file — neither format has a score head that llama.cpp or transformers would load");
        var vocabulary = Vocabulary(location, tokenizerPath, weights);
        using var model = LlamaLoader.FromWeightFile(weights, device, LlamaLoadOptions.FrozenStorage);
        if (model.Config.RopeStyle != RopeStyle.Interleaved)
            throw new ExportException(location.WeightPath, $"rope style {model.Config.RopeStyle} cannot be exported (the readers convert to Interleaved)");
        if (vocabulary.Model.Pieces.Count > model.Config.VocabSize)
            throw new ExportException(vocabulary.SourcePath,
                $"the tokenizer has {vocabulary.Model.Pieces.Count} tokens, the model only {model.Config.VocabSize}: pass the model's own tokenizer");
        IReadOnlyList<ExportTensor> tensors;
        try
        {
            tensors = ExportTensor.Of(model, options.MergeLora);
        }
        catch (InvalidOperationException e)
        {
            throw new ExportException(location.WeightPath, e.Message, e);
        }
        if (options.Format == ExportFormat.HuggingFace) HfExporter.Write(outPath, model.Config, tensors, vocabulary, options);
        else GgufExporter.Write(outPath, model.Config, tensors, vocabulary, options);
    }

    private static ExportVocabulary Vocabulary(ModelLocation location, string? tokenizerPath, WeightFile weights)
    {
        string? path = tokenizerPath ?? location.TokenizerPath;
        if (path is null && weights.Format != WeightFileFormat.Gguf)
            path = ModelLocator.TokenizerBeside(weights.Path, LlamaLoader.ConfigOf(weights).VocabSize);
        if (path is not null) return ExportVocabulary.Load(path);
        if (weights.Format == WeightFileFormat.Gguf && weights.Metadata.ContainsKey("tokenizer.ggml.tokens")) return ExportVocabulary.FromGguf(weights);
        throw new ExportException(location.Requested,
            "no tokenizer found (none beside the weights, in the run or in GGUF metadata); pass --tokenizer: both formats store the vocabulary");
    }
}
