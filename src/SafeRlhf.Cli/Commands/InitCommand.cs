using System.CommandLine;
using System.Diagnostics;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Init;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf init`: a randomly initialised LLaMA checkpoint of a preset's shape, written one chunk at a time
/// into a new folder, so that runs at scale need no download. With --tokenizer the GGUF file stores that vocabulary
/// (llama.cpp needs one to load a file; our loaders then need no --tokenizer either); without it, pass a tokenizer
/// where the model is used (its vocabulary must not be larger than the model's; see --vocab).</summary>
public static class InitCommand
{
    /// <summary>The command with its options; progress (about one line per layer) goes to stderr, the model's
    /// path to stdout.</summary>
    public static Command Create()
    {
        var o = new Options();
        var command = new Command("init", "Write a randomly initialised LLaMA checkpoint of a preset's shape")
        {
            o.Preset, o.Layers, o.Vocab, o.Quantize, o.DType, o.Format, o.Tokenizer, o.Seed, o.Out, o.Quiet,
        };
        command.SetAction(parse => CliRunner.Run(parse, () => Run(parse, o)));
        return command;
    }

    /// <summary>The command's options.</summary>
    private sealed class Options
    {
        public readonly Option<string> Preset = new("--preset")
        {
            Description = $"Model shape: {string.Join(", ", LlamaConfig.PresetNames)}",
            Required = true,
        };
        public readonly Option<int?> Layers = new("--layers") { Description = "Number of layers (default: the preset's)" };
        public readonly Option<int?> Vocab = new("--vocab") { Description = "Vocabulary size (default: the preset's)" };
        public readonly Option<string?> Quantize = new("--quantize")
        {
            Description = "Store the projection and classifier matrices as q8_0 or q4_0 (embeddings and norms stay F32), or write " +
                          "llama.cpp's q4_k_m or q6_k mix (K-quant matrices and token embedding, as llama-quantize lays them out); GGUF only",
        };
        public readonly Option<string> DType = new("--dtype")
        {
            Description = "Type of the matrices that are not quantized: f32, bf16 or f16",
            DefaultValueFactory = _ => "f32",
        };
        public readonly Option<string> Format = new("--format")
        {
            Description = "gguf (one file, llama.cpp names) or safetensors (one file, the configuration in its metadata)",
            DefaultValueFactory = _ => "gguf",
        };
        public readonly Option<string?> Tokenizer = new("--tokenizer")
        {
            Description = "Store this tokenizer's vocabulary in the GGUF file (SentencePiece .model, llama2.c .bin or .gguf; " +
                          "it must have exactly --vocab tokens), so that llama.cpp and our commands load the file without a tokenizer",
        };
        public readonly Option<ulong> Seed = new("--seed") { Description = "Weight seed", DefaultValueFactory = _ => 1 };
        public readonly Option<string> Out = new("--out") { Description = "Output folder (new or empty)", Required = true };
        public readonly Option<bool> Quiet = CommonOptions.Quiet();
    }

    private static int Run(ParseResult parse, Options o)
    {
        var config = Config(parse.GetValue(o.Preset)!, parse.GetValue(o.Layers), parse.GetValue(o.Vocab));
        var options = new RandomCheckpointOptions
        {
            Seed = parse.GetValue(o.Seed),
            MatrixType = MatrixType(parse.GetValue(o.DType)!),
            Quantize = Quantize(parse.GetValue(o.Quantize)),
            Mix = Mix(parse.GetValue(o.Quantize)),
            Format = Format(parse.GetValue(o.Format)!),
            Name = parse.GetValue(o.Preset)!,
            Vocabulary = Vocabulary(parse.GetValue(o.Tokenizer), config),
        };
        if (options.Vocabulary is not null && options.Format == CheckpointFormat.Safetensors)
            throw new CliException("--tokenizer: safetensors has no vocabulary metadata; use --format gguf");
        if ((options.Quantize is not null || options.Mix is not null) && options.Format == CheckpointFormat.Safetensors)
            throw new CliException("--quantize: safetensors cannot store quantized blocks; use --format gguf");
        options.Validate();
        string folder = OutputFolder(parse.GetValue(o.Out)!);
        string path = Path.Combine(folder, RandomCheckpoint.FileName(options.Format));

        bool quiet = parse.GetValue(o.Quiet);
        long bytes = RandomCheckpoint.DataBytes(config, options);
        if (!quiet)
            Console.Error.WriteLine($"{options.Name}: {config.NLayers} layers, dim {config.Dim}, vocab {config.VocabSize}, " +
                                    $"{config.ParameterCount:N0} weights, {Size(bytes)} of tensor data");
        var watch = Stopwatch.StartNew();
        RandomCheckpoint.Write(path, config, options, quiet ? null : (done, total) =>
        {
            if (done == total || done % 9 == 0)
                Console.Error.WriteLine($"  {done}/{total} tensors, {watch.Elapsed.TotalSeconds:F1} s");
        });
        Console.Out.WriteLine(path);
        return 0;
    }

    private static LlamaConfig Config(string preset, int? layers, int? vocab)
    {
        var config = LlamaConfig.TryPreset(preset)
                     ?? throw new CliException($"--preset: unknown preset '{preset}' (valid: {string.Join(", ", LlamaConfig.PresetNames)})");
        if (layers is { } l)
        {
            if (l < 1) throw new CliException($"--layers: must be ≥ 1, got {l}");
            config = config with { NLayers = l };
        }
        if (vocab is { } v)
        {
            if (v < 1) throw new CliException($"--vocab: must be ≥ 1, got {v}");
            config = config with { VocabSize = v };
        }
        return config.Validate();
    }

    /// <summary>The vocabulary of --tokenizer, which must hold exactly the model's vocabulary size of tokens.</summary>
    private static Llama.Export.ExportVocabulary? Vocabulary(string? path, LlamaConfig config)
    {
        if (path is null) return null;
        if (!File.Exists(path)) throw new CliException($"--tokenizer: not found: {path}");
        var vocabulary = Llama.Export.ExportVocabulary.Load(path);
        int tokens = vocabulary.Model.Pieces.Count;
        if (tokens != config.VocabSize)
            throw new CliException($"--tokenizer: {path} has {tokens} tokens, the model's vocabulary is {config.VocabSize}; pass --vocab {tokens}");
        return vocabulary;
    }

    private static DType MatrixType(string name) => name.ToLowerInvariant() switch
    {
        "f32" => DType.F32,
        "bf16" => DType.BF16,
        "f16" => DType.F16,
        _ => throw new CliException($"--dtype: unknown type '{name}' (valid: f32, bf16, f16)"),
    };

    private static DType? Quantize(string? name) => name?.ToLowerInvariant() switch
    {
        null or "q4_k_m" or "q6_k" => null,
        "q8_0" => DType.Q8_0,
        "q4_0" => DType.Q4_0,
        _ => throw new CliException($"--quantize: unknown type '{name}' (valid: q8_0, q4_0, q4_k_m, q6_k)"),
    };

    private static QuantMix? Mix(string? name) => name?.ToLowerInvariant() switch
    {
        "q4_k_m" => QuantMix.Q4_K_M,
        "q6_k" => QuantMix.Q6_K,
        _ => null,
    };

    private static CheckpointFormat Format(string name) => name.ToLowerInvariant() switch
    {
        "gguf" => CheckpointFormat.Gguf,
        "safetensors" => CheckpointFormat.Safetensors,
        _ => throw new CliException($"--format: unknown format '{name}' (valid: gguf, safetensors)"),
    };

    private static string Size(long bytes) => bytes >= 1_000_000_000 ? $"{bytes / 1e9:F2} GB" : $"{bytes / 1e6:F1} MB";

    /// <summary>Creates the folder, or accepts an empty one; anything else is an error naming --out.</summary>
    private static string OutputFolder(string folder)
    {
        if (File.Exists(folder)) throw new CliException($"--out: {folder} is a file; give a new or empty folder");
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new CliException($"--out: {folder} exists and is not empty; give a new or empty folder");
        Directory.CreateDirectory(folder);
        return folder;
    }
}
