using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Rlhf.Data;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Stages;

/// <summary>Loading a stage's model, tokenizer and data, with failures as one clear <see cref="CliException"/>.</summary>
public static class StageData
{
    public static WeightFile OpenModel(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new CliException($"model not found: {path}");
        return Wrap(() => WeightFile.Open(ModelLocator.Resolve(path).WeightPath));
    }

    /// <summary>The model of a weight file; with <paramref name="lora"/> the base loads as LoRA needs it (stored
    /// types kept frozen, dense matrices quantized when asked). A checkpoint with adapters loads with them, on the
    /// base it was saved with (the loader refuses to re-quantize it). Models built with the same
    /// <paramref name="shared"/> cache hold one copy of each frozen base matrix between them.</summary>
    public static LlamaModel Build(WeightFile weights, Device device, LoraConfig? lora = null, FrozenWeightCache? shared = null) =>
        Wrap(() => LlamaLoader.FromWeightFile(weights, device, lora is null ? null : lora.LoadOptions() with { Shared = shared }));

    /// <summary>The configured tokenizer, else the model's own: the GGUF vocabulary, tokenizer.model in a checkpoint
    /// folder, or tok&lt;vocab&gt;.bin / tokenizer.bin / tokenizer.model beside the model file.</summary>
    public static ITextTokenizer Tokenizer(string? path, WeightFile weights, LlamaConfig config, string howToName = "set 'tokenizer' in the config")
    {
        string source = TokenizerSource(path, weights, config, howToName);
        var tokenizer = Wrap(() => weights.Format == WeightFileFormat.Gguf && path is null
            ? SentencePieceBpeTokenizer.FromGguf(weights)
            : TextTokenizer.Load(source));
        if (tokenizer.VocabSize > config.VocabSize)
            throw new CliException($"the tokenizer has {tokenizer.VocabSize} tokens, the model only {config.VocabSize}: use the model's own tokenizer");
        return tokenizer;
    }

    /// <summary>The file the tokenizer of <see cref="Tokenizer"/> is read from (the GGUF file itself for a GGUF vocabulary).</summary>
    public static string TokenizerSource(string? path, WeightFile weights, LlamaConfig config, string howToName = "set 'tokenizer' in the config")
    {
        if (path is not null) return File.Exists(path) ? path : throw new CliException($"tokenizer not found: {path}");
        if (weights.Format == WeightFileFormat.Gguf)
            return weights.Metadata.ContainsKey("tokenizer.ggml.tokens") ? weights.Path
                : throw new CliException($"no tokenizer found for {weights.Path}: the GGUF file holds no vocabulary; {howToName}");
        bool folder = weights.Format == WeightFileFormat.HuggingFace;
        string dir = folder ? weights.Path : Path.GetDirectoryName(Path.GetFullPath(weights.Path)) ?? ".";
        string[] names = folder ? ["tokenizer.model"] : [$"tok{config.VocabSize}.bin", "tokenizer.bin", "tokenizer.model"];
        var candidates = names.Select(n => Path.Combine(dir, n)).ToArray();
        return candidates.FirstOrDefault(File.Exists) ?? ModelLocator.Resolve(weights.Path).TokenizerPath
            ?? throw new CliException($"no tokenizer found for {weights.Path}: looked for {string.Join(", ", candidates)}; {howToName}");
    }

    /// <summary>BOS + the chat template around the prompt (default "BEGINNING OF CONVERSATION: USER: {prompt}
    /// ASSISTANT:") + response + EOS, truncated to <paramref name="maxLength"/>, with the number of prompt tokens.</summary>
    public static (int[] Tokens, int PromptLength) Encode(ITextTokenizer tokenizer, string prompt, string response, int maxLength,
        ChatTemplate? template = null)
    {
        template ??= ChatTemplate.Default;
        int promptLength = tokenizer.Encode(template.Format(prompt), addBos: true, addEos: false).Count;
        var full = tokenizer.Encode(template.FormatWithResponse(prompt, response), addBos: true, addEos: false).Append(tokenizer.EosId);
        return (full.Take(maxLength).ToArray(), promptLength);
    }

    /// <summary>SFT examples from Alpaca rows; rows whose prompt fills <paramref name="maxLength"/> are dropped.</summary>
    public static (List<SftTrainer.Example> Examples, int Dropped) Sft(string path, ITextTokenizer tokenizer, int maxLength,
        ChatTemplate? template = null)
    {
        var rows = Read(path, p => AlpacaReader.Read(p).Rows);
        var examples = new List<SftTrainer.Example>();
        foreach (var row in rows)
        {
            var (tokens, promptLength) = Encode(tokenizer, row.Prompt, row.Output, maxLength, template);
            if (promptLength >= tokens.Length) continue;
            examples.Add(new SftTrainer.Example(tokens[..promptLength], tokens[promptLength..]));
        }
        return (NonEmpty(examples, path, rows.Count), rows.Count - examples.Count);
    }

    /// <summary>Preference pairs from PKU-SafeRLHF rows or HH-RLHF rows (told apart by the first row's fields, see
    /// <see cref="PreferenceFormats"/>). For cost, rows whose safer response is unsafe while the other is safe are
    /// dropped; for dpo, pairs that truncation makes identical are dropped. HH-RLHF pairs prefer the chosen response
    /// (better = safer = response 0); the cost stage refuses them, as they carry no safety labels.</summary>
    public static (List<PairExample> Pairs, int Dropped) Pairs(string path, ITextTokenizer tokenizer, int maxLength, string stage,
        ChatTemplate? template = null)
    {
        if (File.Exists(path) && PreferenceFormats.Detect(path) == PreferenceFormat.HhRlhf)
            return HhPairs(path, tokenizer, maxLength, stage, template);
        var rows = Read(path, p => PkuSafeRlhfReader.Read(p).Rows);
        var pairs = new List<PairExample>();
        foreach (var row in rows)
        {
            var s0 = Encode(tokenizer, row.Prompt, row.Response0, maxLength, template).Tokens;
            var s1 = Encode(tokenizer, row.Prompt, row.Response1, maxLength, template).Tokens;
            var pair = new PairExample(s0, s1, row.BetterResponseId, row.SaferResponseId, row.IsResponse0Safe, row.IsResponse1Safe);
            if (stage == "cost" && !pair.BySafety.SaferSafe && pair.BySafety.UnsaferSafe) continue;
            if (stage == "dpo" && s0.AsSpan().SequenceEqual(s1)) continue;
            pairs.Add(pair);
        }
        return (NonEmpty(pairs, path, rows.Count), rows.Count - pairs.Count);
    }

    private static (List<PairExample> Pairs, int Dropped) HhPairs(string path, ITextTokenizer tokenizer, int maxLength, string stage,
        ChatTemplate? template)
    {
        if (stage == "cost")
            throw new CliException($"data file {path} holds HH-RLHF rows (chosen/rejected): they say which response is preferred " +
                                   "but carry no safe/unsafe labels, which the cost model's loss needs; train cost on PKU-SafeRLHF rows " +
                                   "(HH-RLHF serves reward and dpo)");
        // Published HH-RLHF files hold a few rows whose chosen and rejected dialogues differ before the final turn:
        // those have no shared prompt, so they are skipped and named.
        var read = Read<DatasetReadResult<HhRlhfPair>>(path, p => [HhRlhfReader.Read(p, skipMalformed: true)])[0];
        if (read.SkippedCount > 0)
            Console.Error.WriteLine($"data file {path}: skipped {read.SkippedCount} HH-RLHF rows that are not a chosen/rejected pair " +
                                    $"with a shared prompt (lines {string.Join(", ", read.SkippedLines.Take(10))}{(read.SkippedCount > 10 ? ", ..." : "")})");
        var rows = read.Rows;
        var pairs = new List<PairExample>();
        foreach (var row in rows)
        {
            var (prompt, chosen, rejected) = PreferenceFormats.ForTemplate(row);
            var s0 = Encode(tokenizer, prompt, chosen, maxLength, template).Tokens;
            var s1 = Encode(tokenizer, prompt, rejected, maxLength, template).Tokens;
            if (stage == "dpo" && s0.AsSpan().SequenceEqual(s1)) continue;
            // Chosen is both better and safer; no safety labels (the cost stage refuses HH-RLHF above).
            pairs.Add(new PairExample(s0, s1, BetterId: 0, SaferId: 0, Safe0: true, Safe1: true));
        }
        return (NonEmpty(pairs, path, rows.Count), rows.Count + read.SkippedCount - pairs.Count);
    }

    private static IReadOnlyList<T> Read<T>(string path, Func<string, IReadOnlyList<T>> read)
    {
        if (!File.Exists(path)) throw new CliException($"data file not found: {path}");
        try
        {
            return read(path);
        }
        catch (DatasetFormatException e)
        {
            throw new CliException($"bad data row: {e.Message}");
        }
    }

    private static List<T> NonEmpty<T>(List<T> items, string path, int rows) => items.Count > 0
        ? items
        : throw new CliException($"data file {path}: no usable examples ({rows} rows read; check max_length and the labels)");

    private static T Wrap<T>(Func<T> body)
    {
        try
        {
            return body();
        }
        catch (WeightFormatException e)
        {
            throw new CliException(e.Message);
        }
    }
}
