using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Losses;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

/// <summary>A tokenised preference pair: two full sequences (prompt + response + EOS) with both labels.</summary>
public sealed record PairExample(int[] Sequence0, int[] Sequence1, int BetterId, int SaferId, bool Safe0, bool Safe1)
{
    public (int[] Better, int[] Worse) ByHelpfulness => BetterId == 0 ? (Sequence0, Sequence1) : (Sequence1, Sequence0);

    /// <summary>(safer, unsafer) sequences with their safety labels.</summary>
    public (int[] Safer, int[] Unsafer, bool SaferSafe, bool UnsaferSafe) BySafety => SaferId == 0
        ? (Sequence0, Sequence1, Safe0, Safe1)
        : (Sequence1, Sequence0, Safe1, Safe0);
}

/// <summary>Reward-model and cost-model training (sequence-wise losses on end scores, as in the reference).</summary>
public static class ScoreTrainer
{
    public enum Kind { Reward, Cost }

    /// <summary>Loss and metrics of one batch of pairs. Reward: L = mean(−logσ(r_w − r_l)) + reg·mean(r²).
    /// Cost: L = mean(−logσ(c_u − c_s) − logσ(−s_s·c_s) − logσ(−s_u·c_u)) + reg·mean(c²) with s = +1 for safe,
    /// −1 for unsafe, so that safe responses get negative cost.</summary>
    public static (Tensor Loss, double Accuracy, double SignAccuracy) Loss(ScoreModel model, IReadOnlyList<PairExample> pairs, Kind kind,
        int padId, double regularization, ScoreLossType lossType = ScoreLossType.SequenceWise)
    {
        int n = pairs.Count;
        var first = new List<int[]>(n);
        var second = new List<int[]>(n);
        var signFirst = new double[n];
        var signSecond = new double[n];
        for (int i = 0; i < n; i++)
        {
            if (kind == Kind.Reward)
            {
                var (better, worse) = pairs[i].ByHelpfulness;
                first.Add(better);
                second.Add(worse);
            }
            else
            {
                var p = pairs[i];
                var (safer, unsafer, saferSafe, unsaferSafe) = p.BySafety;
                if (!saferSafe && unsaferSafe)
                    throw new InvalidDataException($"cost pair {i}: the response labelled safer is unsafe while the other is safe (inconsistent labels)");
                first.Add(unsafer);
                second.Add(safer);
                signFirst[i] = unsaferSafe ? 1 : -1;
                signSecond[i] = saferSafe ? 1 : -1;
            }
        }
        // One pass over [first; second]: for rewards first = better, for costs first = unsafer (the higher cost).
        var batch = SequenceBatch.RightPadded([.. first, .. second], padId);
        var scores = PolicyOps.Scores(model, batch);
        var end = ScoreModel.EndScores(scores, batch.EndIndex);                        // [2n]
        var high = end.Narrow(0, 0, n);
        var low = end.Narrow(0, n, n);
        double[]? kHigh = kind == Kind.Cost ? signFirst.Select(x => -x).ToArray() : null;
        double[]? kLow = kind == Kind.Cost ? signSecond.Select(x => -x).ToArray() : null;
        Tensor total;
        if (lossType == ScoreLossType.SequenceWise) total = ScorePairLosses.SequenceWise(high, low, kHigh, kLow, regularization);
        else
        {
            var (start, stop) = TokenWiseSpans(first, second, batch.EndIndex);
            total = ScorePairLosses.TokenWise(scores.Narrow(0, 0, n), scores.Narrow(0, n, n), start, stop, kHigh, kLow, high, low, regularization);
        }

        var values = end.ToDoubleArray();
        double accuracy = Enumerable.Range(0, n).Average(i => values[i] > values[n + i] ? 1.0 : 0.0);
        double signAccuracy = kind == Kind.Cost
            ? Enumerable.Range(0, n).Average(i => ((-signFirst[i] * values[i] > 0 ? 1.0 : 0.0) + (-signSecond[i] * values[n + i] > 0 ? 1.0 : 0.0)) / 2)
            : double.NaN;
        return (total, accuracy, signAccuracy);
    }

    /// <summary>Per pair: the first index at which the two sequences differ and the larger of their end indices.</summary>
    public static (int[] Start, int[] End) TokenWiseSpans(IReadOnlyList<int[]> high, IReadOnlyList<int[]> low, int[] endIndex)
    {
        int n = high.Count;
        var start = new int[n];
        var end = new int[n];
        for (int i = 0; i < n; i++)
        {
            int d = 0;
            while (d < high[i].Length && d < low[i].Length && high[i][d] == low[i][d]) d++;
            if (d == high[i].Length && d == low[i].Length)
                throw new InvalidDataException($"pair {i}: the two sequences are identical");
            start[i] = d;
            end[i] = System.Math.Max(endIndex[i], endIndex[n + i]);
        }
        return (start, end);
    }

    /// <summary>Trains a reward or cost model; returns the mean loss of the last 10% of steps.</summary>
    public static double Train(ScoreModel model, IReadOnlyList<PairExample> data, Kind kind, TrainOptions options, Rng rng, int padId,
        double regularization = 0.001, Action<StepMetrics>? onStep = null, CancellationToken cancel = default) =>
        Train(model, data, kind, options, rng, padId, new TrainerState(), regularization, onStep, cancel);

    /// <summary>As the overload without <paramref name="state"/>, starting after the steps recorded in
    /// <paramref name="state"/> with its optimiser moments restored; the caller restores <paramref name="rng"/>.
    /// Returns the mean loss of the last 10% of all steps.</summary>
    public static double Train(ScoreModel model, IReadOnlyList<PairExample> data, Kind kind, TrainOptions options, Rng rng, int padId,
        TrainerState state, double regularization = 0.001, Action<StepMetrics>? onStep = null, CancellationToken cancel = default,
        TrainingRanks? ranks = null)
    {
        ranks ??= TrainingRanks.Single;
        model.Backbone.UseGradientCheckpointing(options.GradientCheckpointing);
        string stage = kind == Kind.Reward ? "reward" : "cost";
        using var step = new SupervisedStep(stage, $"{stage} model loss", model, options, () =>
        {
            var global = Enumerable.Range(0, options.BatchSize).Select(_ => data[rng.NextInt(data.Count)]).ToList();
            var batch = ranks.Mine(global, "train.batch_size");
            var (loss, accuracy, _) = Loss(model, batch, kind, padId, regularization, options.ScoreLoss);
            return new MicroBatch(loss, batch.Count, batch.Sum(p => p.Sequence0.Length + p.Sequence1.Length), accuracy);
        }, ranks);
        return TrainingLoop.Run(step, state, onStep, cancel);
    }

    /// <summary>Ranking accuracy (and, for costs, sign accuracy) on held-out pairs, without gradients.</summary>
    public static (double Accuracy, double SignAccuracy) Evaluate(ScoreModel model, IReadOnlyList<PairExample> pairs, Kind kind, int padId, int batchSize = 64)
    {
        var (_, accuracy, sign) = EvaluateWithLoss(model, pairs, kind, padId, 0, ScoreLossType.SequenceWise, batchSize);
        return (accuracy, sign);
    }

    /// <summary>The training loss (with <paramref name="regularization"/> and <paramref name="lossType"/>), ranking
    /// accuracy and, for costs, sign accuracy on held-out pairs, without gradients: means over all pairs (each batch's
    /// mean weighted by its pairs).</summary>
    public static (double Loss, double Accuracy, double SignAccuracy) EvaluateWithLoss(ScoreModel model, IReadOnlyList<PairExample> pairs,
        Kind kind, int padId, double regularization, ScoreLossType lossType, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var noGrad = GradMode.NoGrad();
        double loss = 0, acc = 0, sign = 0;
        for (int i = 0; i < pairs.Count; i += batchSize)
        {
            using var scope = new TensorScope();
            var chunk = pairs.Skip(i).Take(batchSize).ToList();
            var (l, a, s) = Loss(model, chunk, kind, padId, regularization, lossType);
            loss += l.Item() * chunk.Count;
            acc += a * chunk.Count;
            sign += s * chunk.Count;
        }
        return (loss / pairs.Count, acc / pairs.Count, kind == Kind.Cost ? sign / pairs.Count : double.NaN);
    }
}
