using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

/// <summary>Direct preference optimisation on the helpfulness pairs (better_response_id):
/// L = mean(−logσ(β·((π_w − ref_w) − (π_l − ref_l)))) where π and ref are sums of token log-probabilities from the
/// first token at which the two sequences differ to their ends, as in the reference implementation.</summary>
public static class DpoTrainer
{
    /// <summary>Loss and preference accuracy of one batch; <paramref name="reference"/> null means the policy with
    /// its LoRA adapters switched off.</summary>
    public static (Tensor Loss, double Accuracy) Loss(LlamaModel policy, LlamaModel? reference, IReadOnlyList<PairExample> pairs,
        double beta, int padId)
    {
        int n = pairs.Count;
        var chosen = pairs.Select(p => p.ByHelpfulness.Better).ToList();
        var rejected = pairs.Select(p => p.ByHelpfulness.Worse).ToList();
        var batch = SequenceBatch.RightPadded([.. chosen, .. rejected], padId);
        int positions = batch.Length - 1;

        // Log-prob position t scores token t + 1: count it from the divergence point to the row's last token.
        var select = new double[2 * n * positions];
        for (int i = 0; i < n; i++)
        {
            int diverge = 0;
            while (diverge < chosen[i].Length && diverge < rejected[i].Length && chosen[i][diverge] == rejected[i][diverge]) diverge++;
            if (diverge == chosen[i].Length && diverge == rejected[i].Length)
                throw new InvalidDataException($"DPO pair {i}: the chosen and rejected sequences are identical");
            for (int row = 0; row < 2; row++)
            {
                int r = row * n + i;
                for (int t = System.Math.Max(diverge - 1, 0); t < batch.EndIndex[r]; t++) select[r * positions + t] = 1;
            }
        }
        var device = policy.Device;
        var dtype = policy.TokEmbeddings.Weight.DType;
        var weights = PolicyOps.FromValues(device, dtype, select, 2 * n, positions);
        var policyLogp = (PolicyOps.LogProbs(policy, batch) * weights).Sum(1);              // [2n]
        Tensor referenceLogp;
        using (GradMode.NoGrad())
        {
            if (reference is null) policy.SetLoraEnabled(false);
            try { referenceLogp = (PolicyOps.LogProbs(reference ?? policy, batch) * weights).Sum(1); }
            finally { if (reference is null) policy.SetLoraEnabled(true); }
        }
        return Losses.DpoLoss.Compute(policyLogp, referenceLogp, beta);
    }

    /// <summary>Trains the policy; returns the mean loss of the last 10% of steps.</summary>
    /// <summary>The DPO loss and preference accuracy on held-out pairs without gradients: means over all pairs (each
    /// batch's mean weighted by its pairs), in batches of <paramref name="batchSize"/>.</summary>
    public static (double Loss, double Accuracy) Evaluate(LlamaModel policy, LlamaModel? reference, IReadOnlyList<PairExample> pairs,
        double beta, int padId, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var noGrad = GradMode.NoGrad();
        double loss = 0, accuracy = 0;
        for (int i = 0; i < pairs.Count; i += batchSize)
        {
            using var scope = new TensorScope();
            var chunk = pairs.Skip(i).Take(batchSize).ToList();
            var (l, a) = Loss(policy, reference, chunk, beta, padId);
            loss += l.Item() * chunk.Count;
            accuracy += a * chunk.Count;
        }
        return (loss / pairs.Count, accuracy / pairs.Count);
    }

    public static double Train(LlamaModel policy, LlamaModel? reference, IReadOnlyList<PairExample> data, TrainOptions options, double beta,
        Rng rng, int padId, Action<StepMetrics>? onStep = null, CancellationToken cancel = default) =>
        Train(policy, reference, data, options, beta, rng, padId, new TrainerState(), onStep, cancel);

    /// <summary>As the overload without <paramref name="state"/>, starting after the steps recorded in
    /// <paramref name="state"/> with its optimiser moments restored; the caller restores <paramref name="rng"/>.
    /// Returns the mean loss of the last 10% of all steps.</summary>
    public static double Train(LlamaModel policy, LlamaModel? reference, IReadOnlyList<PairExample> data, TrainOptions options, double beta,
        Rng rng, int padId, TrainerState state, Action<StepMetrics>? onStep = null, CancellationToken cancel = default,
        TrainingRanks? ranks = null)
    {
        ranks ??= TrainingRanks.Single;
        policy.UseGradientCheckpointing(options.GradientCheckpointing);
        using var step = new SupervisedStep("dpo", "dpo loss", policy, options, () =>
        {
            var global = Enumerable.Range(0, options.BatchSize).Select(_ => data[rng.NextInt(data.Count)]).ToList();
            var batch = ranks.Mine(global, "train.batch_size");
            var (loss, accuracy) = Loss(policy, reference, batch, beta, padId);
            return new MicroBatch(loss, batch.Count, batch.Sum(p => p.Sequence0.Length + p.Sequence1.Length), accuracy);
        }, ranks);
        return TrainingLoop.Run(step, state, onStep, cancel);
    }
}
