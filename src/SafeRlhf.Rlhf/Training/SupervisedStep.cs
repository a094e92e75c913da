using SafeRlhf.Nn;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Training;

/// <summary>What one micro-batch contributes on this rank: its loss (a scalar tensor that carries gradients, the mean
/// over <paramref name="Count"/> local items: labelled tokens for SFT, pairs for the score models and DPO), the tokens
/// it processed, and optionally its accuracy (a mean over the same items).</summary>
public sealed record MicroBatch(Tensor Loss, double Count, double Tokens, double? Accuracy = null);

/// <summary>One optimiser step of a supervised stage (SFT, reward, cost, DPO): the scheduled learning rate, then
/// <see cref="TrainOptions.GradientAccumulation"/> micro-batches whose losses are scaled by 1/accumulation and
/// back-propagated (their gradients add up), the non-finite-loss stop, and the update through
/// <see cref="GradientStep"/>. Across data-parallel ranks each micro-batch loss is weighted by the rank's share of
/// the global item count, so losses, accuracies and gradients summed over ranks are those of the global batch.
/// Metrics: loss, accuracy (when the micro-batches report one), lr, tokens.</summary>
public sealed class SupervisedStep : ITrainingStep, IDisposable
{
    private readonly Module _model;
    private readonly AdamW _optimizer;
    private readonly TrainOptions _options;
    private readonly Func<MicroBatch> _microBatch;
    private readonly string _lossName;

    /// <param name="lossName">how a non-finite loss is named in the error ("sft loss").</param>
    /// <param name="microBatch">draws one global micro-batch and evaluates this rank's slice of it (called inside a
    /// tensor scope).</param>
    public SupervisedStep(string stage, string lossName, Module model, TrainOptions options, Func<MicroBatch> microBatch,
        TrainingRanks? ranks = null)
    {
        Stage = stage;
        _lossName = lossName;
        _model = model;
        _options = options;
        _microBatch = microBatch;
        Ranks = ranks ?? TrainingRanks.Single;
        _optimizer = Ranks.NewOptimizer(model, options.Lr, options.WeightDecay);
    }

    public string Stage { get; }
    public int TotalSteps => _options.Steps;
    public string LossKey => "loss";
    public TrainingRanks Ranks { get; }
    public IReadOnlyList<(string Name, AdamW Optimizer)> Optimizers => [("", _optimizer)];

    public StepMetrics Run(int step)
    {
        _optimizer.Lr = _options.LrAt(step);
        int micro = _options.GradientAccumulation;
        double loss = 0, tokens = 0, accuracy = 0;
        bool hasAccuracy = false;
        for (int i = 0; i < micro; i++)
        {
            using var scope = new TensorScope();
            var batch = _microBatch();
            double share = Ranks.ShareOf(batch.Count);
            var scaled = batch.Loss.Scale(share / micro);
            loss += scaled.Item();
            tokens += batch.Tokens;
            if (batch.Accuracy is { } a) { accuracy += a * share / micro; hasAccuracy = true; }
            scaled.Backward();
        }
        loss = Ranks.Sum(loss);
        TrainingGuard.CheckFinite(_lossName, loss, step);
        GradientStep.Apply(_optimizer, _model, _options.ClipNorm, Ranks);
        var values = new Dictionary<string, double> { ["loss"] = loss };
        if (hasAccuracy) values["accuracy"] = Ranks.Sum(accuracy);
        values["lr"] = _optimizer.Lr;
        values["tokens"] = Ranks.Sum(tokens);
        return new StepMetrics(Stage, step + 1, TotalSteps, values);
    }

    public void Dispose() => _optimizer.Dispose();
}

/// <summary>Stops training on a non-finite loss with a message naming the quantity and step.</summary>
public static class TrainingGuard
{
    public static void CheckFinite(string what, double value, int step)
    {
        if (!double.IsFinite(value))
            throw new NonFiniteLossException($"{what} is {value} at step {step + 1}; training stopped (the last saved checkpoint is kept)");
    }
}

public sealed class NonFiniteLossException(string message) : Exception(message);
