using SafeRlhf.Nn;
using SafeRlhf.Tensors;

namespace SafeRlhf.Rlhf.Training;

/// <summary>What one micro-batch contributes: its loss (a scalar tensor that carries gradients), the tokens it
/// processed, and optionally its accuracy.</summary>
public sealed record MicroBatch(Tensor Loss, double Tokens, double? Accuracy = null);

/// <summary>One optimiser step of a supervised stage (SFT, reward, cost, DPO): the scheduled learning rate, then
/// <see cref="TrainOptions.GradientAccumulation"/> micro-batches whose losses are scaled by 1/accumulation and
/// back-propagated (their gradients add up), the non-finite-loss stop, and the update through
/// <see cref="GradientStep"/>. Metrics: loss, accuracy (when the micro-batches report one), lr, tokens.</summary>
public sealed class SupervisedStep : ITrainingStep, IDisposable
{
    private readonly Module _model;
    private readonly AdamW _optimizer;
    private readonly TrainOptions _options;
    private readonly Func<MicroBatch> _microBatch;
    private readonly string _lossName;

    /// <param name="lossName">how a non-finite loss is named in the error ("sft loss").</param>
    /// <param name="microBatch">draws and evaluates one micro-batch (called inside a tensor scope).</param>
    public SupervisedStep(string stage, string lossName, Module model, TrainOptions options, Func<MicroBatch> microBatch,
        IGradientReducer? reducer = null)
    {
        Stage = stage;
        _lossName = lossName;
        _model = model;
        _options = options;
        _microBatch = microBatch;
        Reducer = reducer ?? SingleProcess.Instance;
        _optimizer = new AdamW(model.TrainableParameters(), options.Lr, weightDecay: options.WeightDecay);
    }

    public string Stage { get; }
    public int TotalSteps => _options.Steps;
    public string LossKey => "loss";
    public IGradientReducer Reducer { get; }
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
            var scaled = batch.Loss.Scale(1.0 / micro);
            loss += scaled.Item();
            tokens += batch.Tokens;
            if (batch.Accuracy is { } a) { accuracy += a / micro; hasAccuracy = true; }
            scaled.Backward();
        }
        loss = Reducer.ReduceMetric(loss);
        TrainingGuard.CheckFinite(_lossName, loss, step);
        GradientStep.Apply(_optimizer, _model, _options.ClipNorm, Reducer);
        var values = new Dictionary<string, double> { ["loss"] = loss };
        if (hasAccuracy) values["accuracy"] = Reducer.ReduceMetric(accuracy);
        values["lr"] = _optimizer.Lr;
        values["tokens"] = Reducer.ReduceMetric(tokens);
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
