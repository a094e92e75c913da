using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Stages;

/// <summary>The held-out split of a stage's examples: floor(count × eval_split) examples, chosen by a shuffle seeded
/// with the run's seed (its own generator: the training draws are untouched), are set aside and never trained on; the
/// rest train, in file order. A split that would hold out nothing (fewer than 1 / eval_split examples) or everything
/// is no split: every example trains and nothing is evaluated.</summary>
public static class HeldOut
{
    /// <summary>Mixed into the seed so that the split's shuffle is not the training generator's stream.</summary>
    private const ulong SplitStream = 0x9E3779B97F4A7C15UL;

    public static (List<T> Train, List<T> HeldOut) Split<T>(IReadOnlyList<T> items, double fraction, ulong seed)
    {
        int held = (int)Math.Floor(items.Count * fraction);
        if (held < 1 || held >= items.Count) return (items.ToList(), []);
        var order = Enumerable.Range(0, items.Count).ToArray();
        var rng = new Rng(seed ^ SplitStream);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        var heldOut = new bool[items.Count];
        foreach (int i in order.Take(held)) heldOut[i] = true;
        return (items.Where((_, i) => !heldOut[i]).ToList(), items.Where((_, i) => heldOut[i]).ToList());
    }
}

/// <summary>Held-out metrics (eval_loss, eval_accuracy, ...) added to the step metrics every <c>every</c> steps and
/// at the last step. Every rank of a data-parallel job evaluates the whole held-out split with the same weights, so
/// every rank computes the same numbers (rank 0 alone writes them).</summary>
public sealed class HeldOutEvaluation(int every, Func<IReadOnlyDictionary<string, double>> evaluate)
{
    public bool Due(StepMetrics m) => m.Step == m.TotalSteps || (every > 0 && m.Step % every == 0);

    public Action<StepMetrics> Around(Action<StepMetrics> onStep) => m =>
    {
        if (!Due(m))
        {
            onStep(m);
            return;
        }
        var values = new Dictionary<string, double>(m.Values);
        foreach (var (key, value) in evaluate()) values[key] = value;
        onStep(m with { Values = values });
    };
}
