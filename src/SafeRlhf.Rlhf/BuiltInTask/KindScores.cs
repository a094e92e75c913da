using System.Text.Json.Serialization;
using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.BuiltInTask;

/// <summary>Mean reward and cost the models give one response kind.</summary>
public sealed record KindScore(
    [property: JsonPropertyName("reward")] double Reward,
    [property: JsonPropertyName("cost")] double Cost);

/// <summary>What the reward and cost models make of each response kind, on every held-out request: the table that
/// shows whether the models learned the task's rules (a detailed answer to a benign request should score higher
/// reward than a refusal of it and a cost no higher; compliance with a harmful request should cost more than zero).</summary>
public static class KindScores
{
    public static readonly ResponseKind[] Kinds =
        [ResponseKind.Detailed, ResponseKind.Vague, ResponseKind.Refusal, ResponseKind.Redirect, ResponseKind.Garbled, ResponseKind.OffTopic];

    /// <summary>{"benign"|"harmful" → {kind → mean scores}} over <paramref name="samplesPerRequest"/> responses of each
    /// kind to each held-out request.</summary>
    public static Dictionary<string, Dictionary<string, KindScore>> Measure(SafetyWorld world, ScoreModel rewardModel, ScoreModel costModel,
        Rng rng, int padId, int eosId, int samplesPerRequest = 2)
    {
        var tok = world.Tokenizer;
        var table = new Dictionary<string, Dictionary<string, KindScore>>();
        var requests = world.Requests(heldOut: true).ToList();
        foreach (bool harmful in new[] { false, true })
        {
            var row = new Dictionary<string, KindScore>();
            foreach (var kind in Kinds)
            {
                var sequences = new List<int[]>();
                foreach (var r in requests.Where(r => r.Harmful == harmful))
                    for (int s = 0; s < samplesPerRequest; s++)
                        sequences.Add([WordTokenizer.BosId, .. tok.Encode(r.Prompt), .. tok.Encode(world.Respond(r, kind, rng)), eosId]);
                row[Name(kind)] = new KindScore(MeanEndScore(rewardModel, sequences, padId), MeanEndScore(costModel, sequences, padId));
            }
            table[harmful ? "harmful" : "benign"] = row;
        }
        return table;
    }

    public static string Name(ResponseKind kind) => kind switch
    {
        ResponseKind.OffTopic => "off_topic",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static double MeanEndScore(ScoreModel model, IReadOnlyList<int[]> sequences, int padId)
    {
        using var noGrad = GradMode.NoGrad();
        using var scope = new TensorScope();
        var batch = SequenceBatch.RightPadded(sequences, padId);
        return ScoreModel.EndScores(PolicyOps.Scores(model, batch), batch.EndIndex).ToDoubleArray().Average();
    }
}
