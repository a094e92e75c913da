using SafeRlhf.Llama;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Training;

/// <summary>Supervised fine-tuning: next-token cross-entropy on response tokens (prompt tokens masked), mean
/// over the unmasked labels of the batch.</summary>
public static class SftTrainer
{
    /// <summary>One (prompt, response) example as ids: the prompt starts with BOS, the response ends with EOS.</summary>
    public sealed record Example(int[] Prompt, int[] Response);

    public const int IgnoreIndex = -100;

    /// <summary>The SFT loss of a batch of examples (a scalar tensor).</summary>
    public static Tensor Loss(LlamaModel model, IReadOnlyList<Example> examples, int padId)
    {
        var batch = SequenceBatch.RightPadded(examples.Select(e => e.Prompt.Concat(e.Response).ToArray()).ToList(), padId);
        int l = batch.Length;
        var targets = new int[batch.Batch * (l - 1)];
        for (int b = 0; b < batch.Batch; b++)
            for (int t = 0; t < l - 1; t++)
            {
                bool label = t + 1 >= examples[b].Prompt.Length && batch.Mask[b * l + t + 1] != 0;
                targets[b * (l - 1) + t] = label ? batch.Tokens[b * l + t + 1] : IgnoreIndex;
            }
        var device = model.Device;
        var hidden = model.Forward(batch.TokensTensor(device), batch.PositionsTensor(device), batch.MaskTensor(device, model.TokEmbeddings.Weight.DType));
        var logits = model.Logits(hidden.Narrow(1, 0, l - 1)).Reshape(batch.Batch * (l - 1), model.Config.VocabSize);
        return Ops.CrossEntropy(logits, Tensor.FromArray(device, targets, targets.Length), IgnoreIndex);
    }

    /// <summary>The SFT loss over held-out examples without gradients: the mean over all their response tokens
    /// (each batch's mean weighted by its labelled tokens), in batches of <paramref name="batchSize"/>.</summary>
    public static double Evaluate(LlamaModel model, IReadOnlyList<Example> examples, int padId, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        using var noGrad = SafeRlhf.Tensors.Autograd.GradMode.NoGrad();
        double sum = 0, labels = 0;
        for (int i = 0; i < examples.Count; i += batchSize)
        {
            using var scope = new TensorScope();
            var chunk = examples.Skip(i).Take(batchSize).ToList();
            double count = chunk.Sum(e => e.Response.Length);
            sum += Loss(model, chunk, padId).Item() * count;
            labels += count;
        }
        return sum / labels;
    }

    /// <summary>Trains for <see cref="TrainOptions.Steps"/> optimiser steps on random batches; returns the mean loss of the last 10% of steps.</summary>
    public static double Train(LlamaModel model, IReadOnlyList<Example> data, TrainOptions options, Rng rng, int padId,
        Action<StepMetrics>? onStep = null, CancellationToken cancel = default) =>
        Train(model, data, options, rng, padId, new TrainerState(), onStep, cancel);

    /// <summary>As <see cref="Train(LlamaModel, IReadOnlyList{Example}, TrainOptions, Rng, int, Action{StepMetrics}?, CancellationToken)"/>,
    /// starting after the steps recorded in <paramref name="state"/> with its optimiser moments restored; the
    /// caller restores <paramref name="rng"/>. Returns the mean loss of the last 10% of all steps.</summary>
    /// <param name="ranks">the data-parallel ranks: each draws the global batch and trains on its slice.</param>
    public static double Train(LlamaModel model, IReadOnlyList<Example> data, TrainOptions options, Rng rng, int padId,
        TrainerState state, Action<StepMetrics>? onStep = null, CancellationToken cancel = default, TrainingRanks? ranks = null)
    {
        ranks ??= TrainingRanks.Single;
        model.UseGradientCheckpointing(options.GradientCheckpointing);
        using var step = new SupervisedStep("sft", "sft loss", model, options, () =>
        {
            var global = Enumerable.Range(0, options.BatchSize).Select(_ => data[rng.NextInt(data.Count)]).ToList();
            var batch = ranks.Mine(global, "train.batch_size");
            return new MicroBatch(Loss(model, batch, padId), batch.Sum(e => e.Response.Length), batch.Sum(e => e.Prompt.Length + e.Response.Length));
        }, ranks);
        return TrainingLoop.Run(step, state, onStep, cancel);
    }
}
