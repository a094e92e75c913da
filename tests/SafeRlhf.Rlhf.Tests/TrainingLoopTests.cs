using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The one training-run skeleton: gradient accumulation in every supervised stage (DPO included), resume
/// from a trainer state, cancellation between steps, and when checkpoints are written.</summary>
public sealed class TrainingLoopTests
{
    private static readonly LlamaConfig Tiny = new() { Dim = 16, HiddenDim = 24, NLayers = 1, NHeads = 2, NKvHeads = 1, VocabSize = 12, SeqLen = 16 };

    private static readonly PairExample[] Pairs =
    [
        new([1, 5, 6, 7, 2], [1, 5, 6, 9, 9, 2], 0, 0, true, true),
        new([1, 4, 8, 2], [1, 4, 3, 3, 2], 1, 0, true, true),
        new([1, 10, 11, 2], [1, 10, 2], 0, 0, true, true),
    ];

    [Fact]
    public void DpoAccumulatesTheGradientsOfEveryMicroBatch()
    {
        var dev = TestDevices.Reference;
        using var policy = LlamaModel.Create(Tiny, dev, new Rng(3), DType.F64);
        using var reference = LlamaModel.Create(Tiny, dev, new Rng(3), DType.F64);
        foreach (var (_, p) in reference.NamedParameters()) p.RequiresGrad = false;

        // The micro-batches the step will draw, and their losses before the update.
        var draw = new Rng(4);
        var micro = Enumerable.Range(0, 3).Select(_ => Pairs[draw.NextInt(Pairs.Length)]).ToList();
        double expected;
        using (GradMode.NoGrad())
        using (new TensorScope())
            expected = micro.Average(p => DpoTrainer.Loss(policy, reference, [p], 0.5, 0).Loss.Item());

        var steps = new List<StepMetrics>();
        DpoTrainer.Train(policy, reference, Pairs, new TrainOptions { Steps = 1, BatchSize = 1, GradientAccumulation = 3, Lr = 1e-2, WarmupRatio = 0 },
            0.5, new Rng(4), 0, steps.Add);
        Assert.Equal(expected, steps.Single().Values["loss"], 12);
        Assert.Equal(micro.Sum(p => p.Sequence0.Length + p.Sequence1.Length), steps.Single().Values["tokens"]);
    }

    /// <summary>A step that records which steps ran; its loss is the step number.</summary>
    private sealed class CountingStep(int total) : ITrainingStep, IDisposable
    {
        private readonly AdamW _optimizer = new([], 0.1);
        public List<int> Ran { get; } = [];
        public string Stage => "count";
        public int TotalSteps => total;
        public string LossKey => "loss";
        public TrainingRanks Ranks => TrainingRanks.Single;
        public IReadOnlyList<(string Name, AdamW Optimizer)> Optimizers => [("", _optimizer)];

        public StepMetrics Run(int step)
        {
            Ran.Add(step);
            return new StepMetrics(Stage, step + 1, total, new Dictionary<string, double> { ["loss"] = step });
        }

        public void Dispose() => _optimizer.Dispose();
    }

    [Fact]
    public void AResumedRunContinuesAfterItsStepsAndAnInterruptionIsReportedBeforeTheCancellation()
    {
        using var task = new CountingStep(5);
        var checkpoints = new List<(int Step, bool Interrupted)>();
        var state = new TrainerState { Step = 2, Losses = [0, 1], OnCheckpoint = (s, interrupted) => checkpoints.Add((s.Step, interrupted)) };
        double tail = TrainingLoop.Run(task, state, cancel: CancellationToken.None);
        Assert.Equal(new[] { 2, 3, 4 }, task.Ran);
        Assert.Equal(new[] { (3, false), (4, false), (5, false) }, checkpoints);
        Assert.Equal(4.0, tail);

        using var cancel = new CancellationTokenSource();
        using var stopped = new CountingStep(5);
        var reports = new List<(int Step, bool Interrupted)>();
        var fresh = new TrainerState
        {
            OnCheckpoint = (s, interrupted) => { reports.Add((s.Step, interrupted)); if (s.Step == 2) cancel.Cancel(); },
        };
        Assert.Throws<OperationCanceledException>(() => TrainingLoop.Run(stopped, fresh, cancel: cancel.Token));
        Assert.Equal(new[] { 0, 1 }, stopped.Ran);
        Assert.Equal(new[] { (1, false), (2, false), (2, true) }, reports);
    }

    [Fact]
    public void CheckpointsAreWrittenOnTheScheduleAndStopAfterStepsAppliesOnce()
    {
        var fresh = new CheckpointSchedule(CheckpointSchedule.DefaultEvery, StopAfter: 3, StartStep: 0, TotalSteps: 120);
        Assert.Equal(new[] { 3, 50, 100, 120 }, Enumerable.Range(1, 120).Where(fresh.SavesAfter));
        Assert.True(fresh.StopsAfter(3));
        var resumed = fresh with { StartStep = 3 };
        Assert.DoesNotContain(Enumerable.Range(4, 117), resumed.StopsAfter);
        Assert.Throws<CheckpointException>(() => CheckpointSchedule.CheckResumable("run/checkpoint-7", 7, 6, "train.steps"));
        CheckpointSchedule.CheckResumable("run/checkpoint-7", 7, 9, "train.steps");
    }
}
