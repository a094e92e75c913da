using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Rlhf.Data;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Stages;

/// <summary>Loading what the RL commands need: score models written by `saferlhf reward`/`cost`, prompts from
/// PKU-SafeRLHF rows, and summary statistics; failures are one clear <see cref="CliException"/>.</summary>
public static class RlModels
{
    /// <summary>The metadata 'format' of score-model files written by the reward and cost stages.</summary>
    public const string ScoreModelFormat = "saferlhf-score-model";

    /// <summary>The model.safetensors of a score model given as a file, a checkpoint folder or a run folder (its latest checkpoint).</summary>
    public static string ResolveScoreFile(string key, string path)
    {
        if (File.Exists(path)) return path;
        if (Directory.Exists(path))
        {
            string latest = Path.Combine(path, RunCheckpoints.LatestFile);
            string folder = File.Exists(latest) ? Path.Combine(path, File.ReadAllText(latest).Trim()) : path;
            string file = Path.Combine(folder, RunCheckpoints.ModelFile);
            if (File.Exists(file)) return file;
            throw new CliException($"config: '{key}': {path} holds no {RunCheckpoints.ModelFile} (expected a reward/cost run or checkpoint folder)");
        }
        throw new CliException($"config: '{key}': not found: {path}");
    }

    /// <summary>A score model with the architecture of <paramref name="baseWeights"/> and every weight from the
    /// file <paramref name="path"/> names; its parameters are frozen unless <paramref name="trainable"/>.</summary>
    public static ScoreModel LoadScoreModel(string key, string path, WeightFile baseWeights, Device device, bool trainable = false,
        FrozenWeightCache? shared = null)
    {
        string file = ResolveScoreFile(key, path);
        LoraConfig? lora = null;
        try
        {
            using var weights = Safetensors.Read(file);
            if (!weights.Metadata.TryGetValue("format", out var format) || format?.ToString() != ScoreModelFormat)
                throw new CliException($"config: '{key}': {file} is not a score model (written by `saferlhf reward` or `saferlhf cost`)");
            if (weights.Metadata.TryGetValue(LoraConfig.MetadataKey, out var json)) lora = LoraConfig.FromJson(file, json.ToString() ?? "");
        }
        catch (WeightFormatException e)
        {
            throw new CliException($"config: '{key}': {e.Message}");
        }
        if (LlamaCheckpoint.HasAdapters(baseWeights))
            throw new CliException($"config: '{key}': the score models' base would be {baseWeights.Path}, which holds LoRA adapters; " +
                                   "set 'score_base' to the model the reward and cost models were trained from");
        // A score model trained with LoRA: the same frozen base, with adapters whose values the file holds.
        var backbone = StageData.Build(baseWeights, device, lora, shared);
        lora?.Apply(backbone, new Rng(0));
        var model = ScoreModel.Create(backbone, new Rng(0));
        try
        {
            ModuleFiles.LoadInto(model, file);
        }
        catch (CheckpointException e)
        {
            model.Dispose();
            throw new CliException($"config: '{key}': {e.Message} (set 'score_base' to the model it was trained from)");
        }
        catch
        {
            model.Dispose();
            throw;
        }
        if (!trainable)
            foreach (var (_, p) in model.NamedParameters()) p.RequiresGrad = false;
        return model;
    }

    /// <summary>Token ids (BOS + template) of the distinct prompts of PKU-SafeRLHF rows, skipping those longer than
    /// <paramref name="maxPromptLength"/>; returns the prompts' texts too.</summary>
    public static (List<int[]> Ids, List<string> Texts, int Skipped) Prompts(string path, ITextTokenizer tokenizer, int maxPromptLength,
        ChatTemplate? template = null)
    {
        if (!File.Exists(path)) throw new CliException($"data file not found: {path}");
        IReadOnlyList<PkuSafeRlhfRow> rows;
        try
        {
            rows = PkuSafeRlhfReader.Read(path).Rows;
        }
        catch (DatasetFormatException e)
        {
            throw new CliException($"bad data row: {e.Message}");
        }
        var distinct = PreferencePairs.DistinctPrompts(rows);
        var ids = new List<int[]>();
        var texts = new List<string>();
        foreach (var prompt in distinct)
        {
            var tokens = tokenizer.Encode((template ?? ChatTemplate.Default).Format(prompt), addBos: true, addEos: false).ToArray();
            if (tokens.Length > maxPromptLength) continue;
            ids.Add(tokens);
            texts.Add(prompt);
        }
        if (ids.Count == 0)
            throw new CliException($"data file {path}: no prompt fits 'max_prompt_length' = {maxPromptLength} tokens ({distinct.Count} distinct prompts read)");
        return (ids, texts, distinct.Count - ids.Count);
    }

    /// <summary>The 0th, 10th, …, 100th percentiles (linear interpolation between order statistics).</summary>
    public static double[] Deciles(IReadOnlyList<double> values)
    {
        var sorted = values.Order().ToArray();
        var result = new double[11];
        for (int k = 0; k <= 10; k++)
        {
            double pos = k / 10.0 * (sorted.Length - 1);
            int lo = (int)System.Math.Floor(pos), hi = (int)System.Math.Ceiling(pos);
            result[k] = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
        }
        return result;
    }
}
