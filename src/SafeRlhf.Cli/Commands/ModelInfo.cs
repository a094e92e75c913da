using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf info --model PATH`: what the path resolves to (the weights, the run, the tokenizer and chat
/// template that go with them) and the model's configuration, without loading tensors.</summary>
public static class ModelInfo
{
    public static void Print(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new CliException($"model not found: {path}");
        var location = ModelLocator.Resolve(path);
        using var weights = WeightFile.Open(location.WeightPath);
        var config = LlamaLoader.ConfigOf(weights);
        Console.WriteLine($"model           {location.Requested} ({location.Kind})");
        Console.WriteLine($"weights         {location.WeightPath} ({weights.Format}, {weights.Tensors.Count} tensors)");
        if (location.RunFolder is { } run) Console.WriteLine($"run             {run}");
        Console.WriteLine($"tokenizer       {location.TokenizerPath ?? ModelLocator.TokenizerBeside(weights.Path, config.VocabSize) ?? (weights.Format == WeightFileFormat.Gguf ? "the GGUF vocabulary" : "none found (pass --tokenizer)")}");
        Console.WriteLine($"chat template   {location.ChatTemplate ?? Rlhf.Data.ChatTemplate.DefaultText + " (default)"}");
        Console.WriteLine($"config          dim {config.Dim}, hidden {config.HiddenDim}, {config.NLayers} layers, {config.NHeads} heads / {config.NKvHeads} KV, " +
                          $"vocab {config.VocabSize}, context {config.SeqLen}, {config.ParameterCount:N0} parameters{(config.TiedEmbeddings ? ", tied embeddings" : "")}");
        string adapters = !LlamaCheckpoint.HasAdapters(weights) ? "no"
            : LlamaCheckpoint.IsAdaptersOnly(weights) && LoraBase.FromMetadata(weights) is { } b
                ? $"yes, adapters only, on the base {b.Path} ({b.Bytes:N0} bytes, SHA-256 {b.Sha256})"
                : "yes, with the base in the same file";
        Console.WriteLine($"LoRA adapters   {adapters}");
    }
}
