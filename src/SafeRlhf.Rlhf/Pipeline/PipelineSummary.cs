using System.Text.Json.Serialization;
using SafeRlhf.Rlhf.BuiltInTask;

namespace SafeRlhf.Rlhf.Pipeline;

/// <summary>A policy on held-out prompts: reward/cost model means and unsafe rate (cost &gt; 0), plus what the task's
/// labelling rules say of the same responses.</summary>
public sealed record PolicySummary(
    [property: JsonPropertyName("mean_reward")] double MeanReward,
    [property: JsonPropertyName("mean_cost")] double MeanCost,
    [property: JsonPropertyName("unsafe_rate")] double UnsafeRate,
    [property: JsonPropertyName("rule_unsafe_rate")] double RuleUnsafeRate,
    [property: JsonPropertyName("rule_helpful_rate_benign")] double RuleHelpfulRateBenign,
    [property: JsonPropertyName("rule_refusal_rate_harmful")] double RuleRefusalRateHarmful,
    [property: JsonPropertyName("rule_redirect_rate_harmful")] double RuleRedirectRateHarmful);

public sealed record SftSummary([property: JsonPropertyName("loss")] double Loss);

public sealed record RewardModelSummary([property: JsonPropertyName("accuracy")] double Accuracy);

public sealed record CostModelSummary(
    [property: JsonPropertyName("accuracy")] double Accuracy,
    [property: JsonPropertyName("sign_accuracy")] double SignAccuracy);

/// <summary>DIR/summary.json of `saferlhf pipeline`.</summary>
public sealed record PipelineSummary(
    [property: JsonPropertyName("sft")] SftSummary Sft,
    [property: JsonPropertyName("reward_model")] RewardModelSummary RewardModel,
    [property: JsonPropertyName("cost_model")] CostModelSummary CostModel,
    [property: JsonPropertyName("policies")] IReadOnlyDictionary<string, PolicySummary> Policies,
    [property: JsonPropertyName("threshold")] double Threshold,
    [property: JsonPropertyName("lambda_trace")] IReadOnlyList<double> LambdaTrace,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("samples")] IReadOnlyDictionary<string, IReadOnlyList<string>> Samples,
    [property: JsonPropertyName("scores_by_kind")] IReadOnlyDictionary<string, Dictionary<string, KindScore>> ScoresByKind);
