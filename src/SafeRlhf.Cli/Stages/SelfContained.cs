using System.Text.Json;
using System.Text.Json.Serialization;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Checkpoints;

namespace SafeRlhf.Cli.Stages;

/// <summary>The files that make a checkpoint folder usable on its own, beside its weights: the tokenizer the run used,
/// copied as <c>tokenizer.model</c> (SentencePiece) or <c>tokenizer.bin</c> (llama2.c), where the model loaders look
/// beside <c>model.safetensors</c>; and <c>model.json</c>, which names the weights and tokenizer files, the stage, the
/// model configuration and, under LoRA, the adapters and the base they were trained on (path, size, SHA-256: the weights
/// file then holds the adapters only, see <see cref="LlamaCheckpoint"/>). A
/// tokenizer read from a GGUF file's vocabulary is not copied: model.json names the GGUF file.</summary>
public static class SelfContained
{
    public const string ManifestFile = "model.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private sealed record Manifest(string Format, string Stage, string Weights, string Tokenizer, LlamaConfig ModelConfig,
        LoraConfig? Lora, LoraBase? Base);

    /// <summary>The extra files of every checkpoint of a run: the tokenizer copy (when it is a file of its own) and
    /// model.json; <paramref name="loraBase"/> is the base the adapters of a LoRA model belong to (null without adapters).</summary>
    public static IReadOnlyList<CheckpointModel> Files(string stage, string tokenizerSource, LlamaConfig config, LoraConfig? lora,
        LoraBase? loraBase, string weightsFile = RunCheckpoints.ModelFile)
    {
        string full = Path.GetFullPath(tokenizerSource);
        bool copy = !full.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
        string tokenizerName = !copy ? full
            : full.EndsWith(".model", StringComparison.OrdinalIgnoreCase) ? "tokenizer.model" : "tokenizer.bin";
        var manifest = new Manifest("saferlhf-checkpoint", stage, weightsFile, tokenizerName, config, lora, loraBase);
        var files = new List<CheckpointModel>();
        if (copy) files.Add(new CheckpointModel(tokenizerName, target => File.Copy(full, target, overwrite: true)));
        files.Add(new CheckpointModel(ManifestFile, target => File.WriteAllText(target, JsonSerializer.Serialize(manifest, Json))));
        return files;
    }

    /// <summary>The base of a model loaded from <paramref name="weights"/> that carries LoRA adapters (fresh ones when
    /// <paramref name="lora"/> is set, or the adapters the file holds): the file itself, or the base an adapters-only
    /// checkpoint names. Null for a model without adapters.</summary>
    public static LoraBase? BaseOf(WeightFile weights, LoraConfig? lora) =>
        lora is null && !LlamaCheckpoint.HasAdapters(weights) ? null : LoraBase.Of(weights);

    /// <summary>On a resumed run: the base the run loads now (<paramref name="current"/>) must be the one the resumed
    /// checkpoint's adapters were trained on (the reference in <paramref name="session"/>'s checkpoint weights, where
    /// there is one); otherwise a <see cref="LoraBaseException"/> names the checkpoint and the base.</summary>
    public static void CheckResumedBase(TrainingSession session, LoraBase? current)
    {
        if (session.Resumed is not { } checkpoint || current is null) return;
        string weights = checkpoint.File(RunCheckpoints.ModelFile);
        LoraBase? saved;
        using (var file = WeightFile.Open(weights)) saved = LoraBase.FromMetadata(file);
        if (saved is null || saved == current) return;
        throw new LoraBaseException(weights, saved.Path,
            $"({saved.Bytes} bytes, SHA-256 {saved.Sha256}) is the base of the checkpoint's adapters; the run would resume on " +
            $"{current.Path} ({current.Bytes} bytes, SHA-256 {current.Sha256})");
    }

    /// <summary>The line every training command prints at its start: what trains (full fine-tuning or LoRA rank and
    /// targets), the base weights' storage type and how many of the parameters train.</summary>
    public static string Summary(string stage, Module model, LoraConfig? lora)
    {
        long trainable = 0, total = 0;
        var frozenTypes = new Dictionary<string, long>();
        foreach (var (_, p) in model.NamedParameters())
        {
            total += p.Numel;
            if (p.RequiresGrad) trainable += p.Numel;
            else if (p.Rank >= 2) frozenTypes[p.DType.ToString()] = frozenTypes.GetValueOrDefault(p.DType.ToString()) + p.Numel;
        }
        string what = lora is null ? "full fine-tuning" : $"LoRA rank {lora.Rank} on {string.Join(", ", lora.Targets)}";
        string baseType = frozenTypes.Count == 0
            ? model.NamedParameters().First().Tensor.DType.ToString()
            : string.Join("+", frozenTypes.OrderByDescending(kv => kv.Value).Select(kv => kv.Key));
        return $"{stage}: {what}, base {baseType}, {trainable:N0} of {total:N0} parameters train ({100.0 * trainable / System.Math.Max(total, 1):F2} %)";
    }
}
