using System.Text.Json;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Stages;

/// <summary>The `lora` block of a stage config: train rank-r adapters of the named projections instead of every
/// weight. The base weights are frozen; F16, BF16, Q8_0, Q4_0 and K-quant (Q4_K, Q5_K, Q6_K) matrices stay as stored, and <see cref="Quantize"/>
/// quantizes the dense ones on load (the 7B recipe: LoRA on a Q4_0 or Q8_0 base).</summary>
public sealed record LoraConfig
{
    /// <summary>The projections the adapters attach to.</summary>
    public static readonly string[] Projections = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];

    public int Rank { get; init; } = 8;
    /// <summary>The adapter output is scaled by alpha / rank.</summary>
    public double Alpha { get; init; } = 16;
    public string[] Targets { get; init; } = ["wq", "wk", "wv", "wo"];
    /// <summary>"q8_0" or "q4_0": quantize the dense base matrices on load; null: keep them as loaded.</summary>
    public string? Quantize { get; init; }

    /// <summary>Throws <see cref="CliException"/> naming the first invalid value under the config key <paramref name="key"/>.</summary>
    public void Validate(string key)
    {
        if (Rank < 1) throw new CliException($"config: '{key}.rank' must be ≥ 1, got {Rank}");
        if (!(Alpha > 0) || !double.IsFinite(Alpha)) throw new CliException($"config: '{key}.alpha' must be a positive number, got {Alpha}");
        if (Targets is null || Targets.Length == 0)
            throw new CliException($"config: '{key}.targets' must name at least one of {string.Join(", ", Projections)}");
        foreach (var t in Targets)
            if (!Projections.Contains(t))
                throw new CliException($"config: '{key}.targets': unknown projection '{t}' (expected {string.Join(", ", Projections)})");
        if (Quantize is not null && QuantizedType() is null)
            throw new CliException($"config: '{key}.quantize' must be \"q8_0\" or \"q4_0\" (or absent), got \"{Quantize}\"");
    }

    private DType? QuantizedType() => Quantize?.ToLowerInvariant() switch
    {
        "q8_0" => DType.Q8_0,
        "q4_0" => DType.Q4_0,
        _ => null,
    };

    /// <summary>How to load the base: stored types kept frozen, dense matrices quantized when asked.</summary>
    public LlamaLoadOptions LoadOptions() => LlamaLoadOptions.FrozenStorage with { Quantize = QuantizedType() };

    /// <summary>Adds the adapters (and freezes everything else).</summary>
    public void Apply(LlamaModel model, Rng rng) => model.AddLora(Rank, Alpha, Targets, rng);

    /// <summary>The metadata key of score-model files trained with adapters (its value is this config as JSON).</summary>
    public const string MetadataKey = "lora";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static LoraConfig FromJson(string file, string json)
    {
        try
        {
            return JsonSerializer.Deserialize<LoraConfig>(json, Json) ?? throw new JsonException("null");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
        {
            throw new CliException($"corrupt score model: {file}: metadata '{MetadataKey}' is not a LoRA config ({e.Message})");
        }
    }
}
