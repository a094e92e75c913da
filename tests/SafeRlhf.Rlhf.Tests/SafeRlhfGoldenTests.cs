using System.Text.Json;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Rlhf.Tests.Oracles;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>Recomputes every quantity of golden/safe_rlhf_losses_golden.json from its inputs and hyper-parameters.</summary>
public sealed class SafeRlhfGoldenTests
{
    private const double RelativeTolerance = 1e-6;
    private const double ZeroTolerance = 1e-12;

    [Fact]
    public void EveryExpectedQuantityIsReproduced()
    {
        using var golden = JsonDocument.Parse(File.ReadAllText(Assets.Require("golden/safe_rlhf_losses_golden.json")));
        var root = golden.RootElement;
        var computed = Compute(root.GetProperty("hyper"), root.GetProperty("inputs"));

        int compared = CompareAll(root.GetProperty("expected"), computed);
        Assert.True(compared > 0, "the golden file lists no expected quantity");
    }

    [Fact]
    public void AnExpectedKeyWithoutAComputationFails()
    {
        using var golden = JsonDocument.Parse(File.ReadAllText(Assets.Require("golden/safe_rlhf_losses_golden.json")));
        var root = golden.RootElement;
        var computed = Compute(root.GetProperty("hyper"), root.GetProperty("inputs"));
        using var extra = JsonDocument.Parse("{\"a_quantity_nobody_computes\": 1.0}");
        var error = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => CompareAll(extra.RootElement, computed));
        Assert.Contains("a_quantity_nobody_computes", error.Message);
    }

    // Compares every expected quantity with its computation; returns how many were compared.
    private static int CompareAll(JsonElement expected, Dictionary<string, Quantity> computed)
    {
        int compared = 0;
        foreach (var quantity in expected.EnumerateObject())
        {
            Assert.True(computed.TryGetValue(quantity.Name, out var actual),
                $"expected quantity '{quantity.Name}' has no computation in this test");
            var (want, wantShape) = Flatten(quantity.Value);
            Assert.True(wantShape.SequenceEqual(actual.Shape),
                $"{quantity.Name}: shape [{string.Join(", ", actual.Shape)}], expected [{string.Join(", ", wantShape)}]");
            for (int i = 0; i < want.Length; i++) AssertClose(quantity.Name, i, want[i], actual.Values[i]);
            compared++;
        }
        return compared;
    }

    /// <summary>Every quantity the golden file can hold, computed with SafeRlhf.Rlhf.Math.</summary>
    private static Dictionary<string, Quantity> Compute(JsonElement hyper, JsonElement inputs)
    {
        double klCoeff = hyper.GetProperty("kl_coeff").GetDouble();
        double clipScore = hyper.GetProperty("clip_range_score").GetDouble();
        double clipRatio = hyper.GetProperty("clip_range_ratio").GetDouble();
        double clipValue = hyper.GetProperty("clip_range_value").GetDouble();
        double gamma = hyper.GetProperty("gamma").GetDouble();
        double gaeLambda = hyper.GetProperty("gae_lambda").GetDouble();
        double regularization = hyper.GetProperty("regularization").GetDouble();
        int start = hyper.GetProperty("start").GetInt32();
        Assert.Equal(hyper.GetProperty("prompt_len").GetInt32() - 1, start);
        int window = hyper.TryGetProperty("episode_cost_window_size", out var w) ? w.GetInt32() : LagrangeMultiplier.DefaultWindowSize;

        var mask = Mask(inputs.GetProperty("sequence_mask"));
        var oldLogProbs = Matrix(inputs.GetProperty("old_log_probs"));
        var refLogProbs = Matrix(inputs.GetProperty("ref_log_probs"));
        var newLogProbs = Matrix(inputs.GetProperty("new_log_probs"));
        var reward = Vector(inputs.GetProperty("reward"));
        var cost = Vector(inputs.GetProperty("cost"));
        var oldRewardValues = Matrix(inputs.GetProperty("old_reward_values"));
        var oldCostValues = Matrix(inputs.GetProperty("old_cost_values"));
        var newRewardValues = Matrix(inputs.GetProperty("new_reward_values"));
        var newCostValues = Matrix(inputs.GetProperty("new_cost_values"));

        var q = new Dictionary<string, Quantity>(StringComparer.Ordinal);

        // KL-shaped per-token signals.
        q["end_index"] = Quantity.Of(KlShapedSignals.EndIndices(mask).Select(i => (double)i).ToArray());
        var rewards = KlShapedSignals.Rewards(reward, oldLogProbs, refLogProbs, mask, klCoeff, clipScore);
        var costs = KlShapedSignals.Costs(cost, oldLogProbs, refLogProbs, mask, klCoeff, clipScore);
        q["rewards"] = Quantity.Of(rewards);
        q["costs"] = Quantity.Of(costs);

        // GAE on the rollout critics' values.
        var (rewardAdvantages, rewardReturns) = Gae.Compute(oldRewardValues, rewards, mask, start, gamma, gaeLambda);
        var (costAdvantages, costReturns) = Gae.Compute(oldCostValues, costs, mask, start, gamma, gaeLambda);
        q["reward_advantages"] = Quantity.Of(rewardAdvantages);
        q["reward_returns"] = Quantity.Of(rewardReturns);
        q["cost_advantages"] = Quantity.Of(costAdvantages);
        q["cost_returns"] = Quantity.Of(costReturns);

        // Multiplier update, then the actor loss with the updated λ.
        var multiplier = new LagrangeMultiplier(
            lambdaInit: hyper.GetProperty("lambda_init").GetDouble(),
            learningRate: hyper.GetProperty("lambda_lr").GetDouble(),
            threshold: hyper.GetProperty("threshold").GetDouble(),
            lambdaMax: hyper.GetProperty("lambda_max").GetDouble(),
            windowSize: window);
        multiplier.AddEpisodeCosts(Vector(inputs.GetProperty("episode_costs")));
        q["episode_cost_mean"] = Quantity.Of(multiplier.Update());
        q["log_lambda_after_update"] = Quantity.Of(multiplier.LogLambda);
        q["lambda_after_update"] = Quantity.Of(multiplier.Lambda);

        var advantages = CombinedAdvantage.Compute(rewardAdvantages, costAdvantages, multiplier.Lambda);
        q["combined_advantages"] = Quantity.Of(advantages);
        var responseMask = Batch.ColumnsFrom(mask, start);
        q["actor_loss"] = Quantity.Of(PpoActorLoss.Compute(
            Batch.ColumnsFrom(newLogProbs, start), Batch.ColumnsFrom(oldLogProbs, start), advantages, responseMask, clipRatio));
        q["reward_critic_loss"] = Quantity.Of(CriticLoss.Compute(
            Batch.ColumnsFrom(newRewardValues, start), Batch.ColumnsFrom(oldRewardValues, start), rewardReturns, responseMask, clipValue));
        q["cost_critic_loss"] = Quantity.Of(CriticLoss.Compute(
            Batch.ColumnsFrom(newCostValues, start), Batch.ColumnsFrom(oldCostValues, start), costReturns, responseMask, clipValue));

        // Score-model losses.
        var (rmLoss, rmAccuracy) = RewardModelLoss.Compute(
            Vector(inputs.GetProperty("rm_end_scores_better")), Vector(inputs.GetProperty("rm_end_scores_worse")), regularization);
        q["reward_model_loss"] = Quantity.Of(rmLoss);
        q["reward_model_accuracy"] = Quantity.Of(rmAccuracy);

        // The golden file applies the sign term as −log σ(s·c) with s = 2·is_safe − 1, the formula printed in
        // SAFE_RLHF.md; that s is passed here as the per-response sign k of CostModelLoss unchanged.
        var saferSign = Vector(inputs.GetProperty("cm_safer_is_safe")).Select(v => (int)(2 * v - 1)).ToArray();
        var unsaferSign = Vector(inputs.GetProperty("cm_unsafer_is_safe")).Select(v => (int)(2 * v - 1)).ToArray();
        var (cmLoss, cmRanking, cmSign) = CostModelLoss.Compute(
            Vector(inputs.GetProperty("cm_end_scores_safer")), Vector(inputs.GetProperty("cm_end_scores_unsafer")),
            saferSign, unsaferSign, regularization);
        q["cost_model_loss"] = Quantity.Of(cmLoss);
        q["cost_model_ranking_accuracy"] = Quantity.Of(cmRanking);
        q["cost_model_sign_accuracy"] = Quantity.Of(cmSign);
        return q;
    }

    private static void AssertClose(string name, int index, double expected, double actual)
    {
        if (expected == 0)
        {
            Assert.True(System.Math.Abs(actual) <= ZeroTolerance, $"{name}[{index}]: {actual:R}, expected exactly 0");
            return;
        }
        double relative = System.Math.Abs(actual - expected) / System.Math.Abs(expected);
        Assert.True(relative <= RelativeTolerance,
            $"{name}[{index}]: {actual:R}, expected {expected:R} (relative error {relative:E2})");
    }

    private sealed record Quantity(double[] Values, int[] Shape)
    {
        public static Quantity Of(double value) => new([value], []);
        public static Quantity Of(double[] values) => new(values, [values.Length]);
        public static Quantity Of(double[,] values) =>
            new(values.Cast<double>().ToArray(), [values.GetLength(0), values.GetLength(1)]);
    }

    // A JSON number or nested array → row-major values and shape.
    private static (double[] Values, int[] Shape) Flatten(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Number) return ([element.GetDouble()], []);
        Assert.Equal(JsonValueKind.Array, element.ValueKind);
        var parts = element.EnumerateArray().Select(Flatten).ToList();
        Assert.NotEmpty(parts);
        Assert.All(parts, p => Assert.Equal(parts[0].Shape, p.Shape));
        return (parts.SelectMany(p => p.Values).ToArray(), [parts.Count, .. parts[0].Shape]);
    }

    private static double[] Vector(JsonElement element) => element.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    private static double[,] Matrix(JsonElement element)
    {
        var rows = element.EnumerateArray().Select(Vector).ToArray();
        var matrix = new double[rows.Length, rows[0].Length];
        for (int b = 0; b < rows.Length; b++)
        {
            Assert.Equal(rows[0].Length, rows[b].Length);
            for (int t = 0; t < rows[b].Length; t++) matrix[b, t] = rows[b][t];
        }
        return matrix;
    }

    private static bool[,] Mask(JsonElement element)
    {
        var values = Matrix(element);
        var mask = new bool[values.GetLength(0), values.GetLength(1)];
        for (int b = 0; b < values.GetLength(0); b++)
        {
            for (int t = 0; t < values.GetLength(1); t++)
            {
                Assert.True(values[b, t] is 0 or 1, $"sequence_mask[{b}][{t}] = {values[b, t]} is not 0 or 1");
                mask[b, t] = values[b, t] == 1;
            }
        }
        return mask;
    }
}
