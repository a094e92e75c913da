using System.CommandLine;
using System.Text.Json;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Rlhf.Planning;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Meta;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf plan`: runs one training step of a stage on the meta device (shapes only, no data) and prints
/// its peak memory split into weights, trainable state, activations, KV cache and allocator waste, per phase.</summary>
public static class PlanCommand
{
    public static Command Create()
    {
        var stageOption = new Option<string>("--stage") { Description = $"The step to plan: {string.Join(", ", PlanSettings.Stages)}", Required = true };
        var modelOption = new Option<string>("--model") { Description = "A weight file, Hugging Face, checkpoint or run folder (its shape and stored type), or a preset name", Required = true };
        var layersOption = new Option<int>("--layers") { Description = "Override the number of transformer blocks (0: the model's)" };
        var baseOption = new Option<string?>("--base") { Description = "Storage of the projection matrices: f32, bf16, f16, q8_0 or q4_0 (default: as the file stores them; f32 for a preset)" };
        var loraRankOption = new Option<int>("--lora-rank") { Description = "LoRA rank (0: full fine-tuning; required for a frozen bf16/f16/q8_0/q4_0 base)" };
        var loraTargetsOption = new Option<string>("--lora-targets") { Description = "Comma-separated projections with adapters", DefaultValueFactory = _ => "wq,wk,wv,wo,w1,w2,w3" };
        var batchOption = new Option<int>("--batch") { Description = "Sequences per step (RL: prompts per rollout)", DefaultValueFactory = _ => 8 };
        var promptOption = new Option<int>("--prompt-length") { Description = "RL: prompt tokens; other stages: tokens per sequence", DefaultValueFactory = _ => 256 };
        var newTokensOption = new Option<int>("--new-tokens") { Description = "RL: generated tokens per response", DefaultValueFactory = _ => 256 };
        var recomputeOption = new Option<string>("--gradient-checkpointing") { Description = "on, off or auto (on from 100M weights)", DefaultValueFactory = _ => "auto" };
        var jsonOption = new Option<bool>("--json") { Description = "One JSON object instead of the table" };
        var kvCacheOption = CommonOptions.KvCache();
        var command = new Command("plan", "Plan the peak memory of one training step on the meta device (no data, any model size)")
        {
            stageOption, modelOption, layersOption, baseOption, loraRankOption, loraTargetsOption, batchOption, promptOption,
            newTokensOption, recomputeOption, kvCacheOption, jsonOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            var (config, storedBase) = ModelShape(parse.GetValue(modelOption)!);
            int layers = parse.GetValue(layersOption);
            if (layers < 0) throw new CliException($"--layers: must be ≥ 0, got {layers}");
            if (layers > 0) config = config with { NLayers = layers };
            var settings = new PlanSettings
            {
                Stage = parse.GetValue(stageOption)!,
                Config = config,
                BaseType = parse.GetValue(baseOption) is { } b ? ParseBase(b) : storedBase,
                LoraRank = parse.GetValue(loraRankOption),
                LoraTargets = parse.GetValue(loraTargetsOption)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Batch = parse.GetValue(batchOption),
                PromptLength = parse.GetValue(promptOption),
                NewTokens = parse.GetValue(newTokensOption),
                KvCache = CommonOptions.ParseKvCache(parse.GetValue(kvCacheOption)),
                GradientCheckpointing = parse.GetValue(recomputeOption) switch
                {
                    "on" => true,
                    "off" => false,
                    "auto" => null,
                    var v => throw new CliException($"--gradient-checkpointing: expected on, off or auto, got '{v}'"),
                },
            };
            foreach (var t in settings.LoraTargets)
                if (!Stages.LoraConfig.Projections.Contains(t))
                    throw new CliException($"--lora-targets: unknown projection '{t}' (expected {string.Join(", ", Stages.LoraConfig.Projections)})");
            var plan = MemoryPlan.Of(settings);
            if (parse.GetValue(jsonOption)) Console.Out.WriteLine(JsonSerializer.Serialize(plan.ToJson()));
            else plan.Write(Console.Out);
            return 0;
        }));
        return command;
    }

    private static DType ParseBase(string value) => value.ToLowerInvariant() switch
    {
        "f32" => DType.F32,
        "bf16" => DType.BF16,
        "f16" => DType.F16,
        "q8_0" => DType.Q8_0,
        "q4_0" => DType.Q4_0,
        _ => throw new CliException($"--base: expected f32, bf16, f16, q8_0 or q4_0, got '{value}'"),
    };

    /// <summary>The shape of a preset or a model file, and how the file stores its projection matrices.</summary>
    private static (LlamaConfig Config, DType StoredBase) ModelShape(string model)
    {
        if (!File.Exists(model) && !Directory.Exists(model))
        {
            var preset = LlamaConfig.TryPreset(model)
                ?? throw new CliException($"--model: {model} is neither a file nor a folder, and unknown model preset '{model}' " +
                                          $"(valid: {string.Join(", ", LlamaConfig.PresetNames)})");
            return (preset, DType.F32);
        }
        try
        {
            using var file = WeightFile.Open(ModelLocator.Resolve(model).WeightPath);
            var config = LlamaLoader.ConfigOf(file);
            var stored = file.TryGetTensor("layers.0.attention.wq.weight", out var wq) && LlamaLoadOptions.StorageTypes.Contains(wq.DType)
                ? wq.DType : DType.F32;
            return (config, stored);
        }
        catch (Exception e) when (e is WeightFormatException or ModelLocationException)
        {
            throw new CliException($"--model: {e.Message}");
        }
    }
}
