using System.Text.Json;
using System.Text.RegularExpressions;
using SafeRlhf.Llama.Formats;

namespace SafeRlhf.Llama.Loading;

/// <summary>The one resolver of <c>--model</c> arguments. Accepted: a weight file (.safetensors, .gguf, llama2.c
/// .bin), a Hugging Face folder, a checkpoint folder (<c>checkpoint-N</c> holding model.safetensors), a run's
/// <c>latest</c> pointer, or a run folder (the final model its result.json names — "model" for the single stages,
/// "actor" for the RL stages — else the checkpoint <c>latest</c> names, else actor.safetensors). For weights inside a
/// run it also finds the tokenizer (saved beside the weights, else the run config's "tokenizer", else the tokenizer
/// of the model the run started from) and the chat template (the checkpoint's metadata, else the run config's
/// "chat_template").</summary>
public static partial class ModelLocator
{
    public const string CheckpointModelFile = "model.safetensors";
    public const string LatestFile = "latest";
    public const string RunConfigFile = "config.json";
    public const string ResultFile = "result.json";
    public const string ActorFile = "actor.safetensors";

    /// <summary>Key of the chat template in a run's config.json and in a checkpoint's safetensors metadata.</summary>
    public const string ChatTemplateKey = "chat_template";

    // result.json keys naming a run's final model; config.json keys naming the model a run started from.
    private static readonly string[] ResultModelKeys = ["model", "actor"];
    private static readonly string[] BaseModelKeys = ["model", "actor", "policy", "policy_a"];
    private const int MaxDepth = 4;

    [GeneratedRegex(@"^checkpoint-\d+$")]
    private static partial Regex CheckpointName();

    /// <summary>Resolves <paramref name="path"/>; a path that names nothing loadable throws a
    /// <see cref="ModelLocationException"/> naming it and what was looked for.</summary>
    public static ModelLocation Resolve(string path) => Resolve(path, 0);

    private static ModelLocation Resolve(string path, int depth)
    {
        if (File.Exists(path))
        {
            if (Path.GetFileName(path) == LatestFile) return FromCheckpoint(path, FollowLatest(path), ModelSourceKind.Checkpoint, depth);
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null && CheckpointName().IsMatch(Path.GetFileName(dir)) && Path.GetFileName(path) == CheckpointModelFile)
                return FromCheckpoint(path, dir, ModelSourceKind.Checkpoint, depth);
            if (dir is not null && IsRunFolder(dir)) return InRun(path, path, dir, ModelSourceKind.Checkpoint, depth);
            return new ModelLocation(path, path, ModelSourceKind.WeightFile, null, null, MetadataTemplate(path));
        }
        if (!Directory.Exists(path)) throw new ModelLocationException(path, "no such file or folder");
        if (IsHuggingFaceFolder(path))
            return new ModelLocation(path, path, ModelSourceKind.HuggingFaceFolder, null, Existing(Path.Combine(path, "tokenizer.model")), null);
        if (File.Exists(Path.Combine(path, CheckpointModelFile))) return FromCheckpoint(path, path, ModelSourceKind.Checkpoint, depth);
        if (FinalModel(path) is { } final) return InRun(path, final, path, ModelSourceKind.Run, depth);
        if (File.Exists(Path.Combine(path, LatestFile)))
            return FromCheckpoint(path, FollowLatest(Path.Combine(path, LatestFile)), ModelSourceKind.Run, depth);
        if (File.Exists(Path.Combine(path, ActorFile))) return InRun(path, Path.Combine(path, ActorFile), path, ModelSourceKind.Run, depth);
        throw new ModelLocationException(path,
            $"no loadable model in this folder: looked for a Hugging Face {HfCheckpoint.ConfigFile} with {HfCheckpoint.SingleFile}, " +
            $"a checkpoint's {CheckpointModelFile}, a run's {ResultFile} naming its model, a '{LatestFile}' pointer and {ActorFile}");
    }

    /// <summary>The tokenizer saved beside <paramref name="weightPath"/>: tokenizer.model, tokenizer.bin, or
    /// tok&lt;vocab&gt;.bin when <paramref name="vocabSize"/> is known (null when none exists).</summary>
    public static string? TokenizerBeside(string weightPath, int? vocabSize)
    {
        string dir = Directory.Exists(weightPath) ? weightPath : Path.GetDirectoryName(Path.GetFullPath(weightPath)) ?? ".";
        string[] names = vocabSize is { } v ? [$"tok{v}.bin", "tokenizer.bin", "tokenizer.model"] : ["tokenizer.model", "tokenizer.bin"];
        return names.Select(n => Path.Combine(dir, n)).FirstOrDefault(File.Exists);
    }

    private static ModelLocation FromCheckpoint(string requested, string folder, ModelSourceKind kind, int depth)
    {
        string weights = File.Exists(folder) ? folder : Path.Combine(folder, CheckpointModelFile);
        if (!File.Exists(weights)) throw new ModelLocationException(requested, $"the checkpoint folder {folder} holds no {CheckpointModelFile}");
        string checkpointFolder = Path.GetDirectoryName(Path.GetFullPath(weights))!;
        string? parent = Path.GetDirectoryName(checkpointFolder);
        string? run = parent is not null && IsRunFolder(parent) ? parent : null;
        return InRun(requested, weights, run, kind, depth);
    }

    private static ModelLocation InRun(string requested, string weights, string? run, ModelSourceKind kind, int depth)
    {
        using var config = run is null ? null : ReadJson(Path.Combine(run, RunConfigFile));
        string? template = MetadataTemplate(weights) ?? StringKey(config, ChatTemplateKey);
        string? tokenizer = TokenizerBeside(weights, VocabOf(weights));
        tokenizer ??= StringKey(config, "tokenizer") is { } named && File.Exists(named) ? named : null;
        if (tokenizer is null && depth < MaxDepth)
            foreach (string key in BaseModelKeys)
                if (StringKey(config, key) is { } basePath && (File.Exists(basePath) || Directory.Exists(basePath)))
                {
                    tokenizer = TokenizerOf(basePath, depth + 1);
                    break;
                }
        return new ModelLocation(requested, weights, kind, run is null ? null : Path.GetFullPath(run), tokenizer, template);
    }

    // The tokenizer of the model a run started from: the one its own location finds, else beside it, else a GGUF's vocabulary.
    private static string? TokenizerOf(string basePath, int depth)
    {
        var location = Resolve(basePath, depth);
        if (location.TokenizerPath is not null) return location.TokenizerPath;
        if (Path.GetExtension(location.WeightPath).Equals(".gguf", StringComparison.OrdinalIgnoreCase)) return location.WeightPath;
        return TokenizerBeside(location.WeightPath, VocabOf(location.WeightPath));
    }

    private static int? VocabOf(string weights)
    {
        try
        {
            return LlamaLoader.ReadConfig(weights).VocabSize;
        }
        catch (Exception e) when (e is InputFormatException or IOException or UnauthorizedAccessException)
        {
            return null;   // a score model or another non-LLaMA file: only the fixed tokenizer names apply
        }
    }

    /// <summary>GGUF metadata key of the chat template (as written by the exporter).</summary>
    public const string GgufChatTemplateKey = "saferlhf.chat_template";

    // The template stored in a checkpoint's safetensors metadata or an exported GGUF (a file that cannot be read is
    // left to the loader, which names what is wrong with it).
    private static string? MetadataTemplate(string weights)
    {
        bool gguf = weights.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);
        if (!gguf && !weights.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            using var file = gguf ? GgufReader.Read(weights) : Safetensors.Read(weights);
            return file.Metadata.TryGetValue(gguf ? GgufChatTemplateKey : ChatTemplateKey, out var v) ? v as string : null;
        }
        catch (InputFormatException)
        {
            return null;
        }
    }

    private static string? FinalModel(string run)
    {
        using var result = ReadJson(Path.Combine(run, ResultFile));
        foreach (string key in ResultModelKeys)
        {
            if (StringKey(result, key) is not { } named) continue;
            if (File.Exists(named)) return named;
            // A run folder that was moved: the same checkpoint-N/file or file inside it.
            string? parentName = Path.GetFileName(Path.GetDirectoryName(named));
            string[] moved = parentName is not null && CheckpointName().IsMatch(parentName)
                ? [Path.Combine(run, parentName, Path.GetFileName(named))]
                : [Path.Combine(run, Path.GetFileName(named))];
            if (File.Exists(moved[0])) return moved[0];
        }
        return null;
    }

    private static string FollowLatest(string latest)
    {
        string name = File.ReadAllText(latest).Trim();
        if (!CheckpointName().IsMatch(name)) throw new ModelLocationException(latest, $"does not name a checkpoint folder ('{name}')");
        string folder = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(latest))!, name);
        if (!Directory.Exists(folder)) throw new ModelLocationException(latest, $"names {folder}, which does not exist");
        return folder;
    }

    private static bool IsRunFolder(string dir) =>
        File.Exists(Path.Combine(dir, RunConfigFile)) && !IsHuggingFaceFolder(dir)
        && (File.Exists(Path.Combine(dir, LatestFile)) || File.Exists(Path.Combine(dir, ResultFile)) || File.Exists(Path.Combine(dir, "metrics.jsonl")));

    private static bool IsHuggingFaceFolder(string dir)
    {
        if (!File.Exists(Path.Combine(dir, HfCheckpoint.SingleFile)) && !File.Exists(Path.Combine(dir, HfCheckpoint.IndexFile))) return false;
        using var config = ReadJson(Path.Combine(dir, HfCheckpoint.ConfigFile));
        return config is not null && config.RootElement.TryGetProperty("hidden_size", out _);
    }

    private static string? Existing(string path) => File.Exists(path) ? path : null;

    private static JsonDocument? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind == JsonValueKind.Object) return doc;
            doc.Dispose();
            throw new ModelLocationException(path, "is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ModelLocationException(path, $"is not valid JSON ({e.Message})", e);
        }
    }

    private static string? StringKey(JsonDocument? doc, string key) =>
        doc is not null && doc.RootElement.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
