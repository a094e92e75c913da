using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>Held-out evaluation: the batched means equal one pass over all examples (a different batching), and
/// evaluating leaves no gradients behind.</summary>
public sealed class HeldOutEvaluationTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 32, HiddenDim = 64, NLayers = 1, NHeads = 2, NKvHeads = 1, VocabSize = 40, SeqLen = 32,
    };

    private const int Pad = 0, Eos = 2;

    [Fact]
    public void SftEvaluationIsTheTokenMeanOverAllExamplesWhateverTheBatching()
    {
        var rng = new Rng(4);
        using var model = LlamaModel.Create(Tiny, TestDevices.Reference, rng.Fork());
        SftTrainer.Example[] data =
        [
            new([1, 5, 6], [7, 8, Eos]), new([1, 9], [10, 11, 12, 13, Eos]), new([1, 14, 15, 16], [17, Eos]), new([1, 3], [4, Eos]),
        ];
        double whole;
        using (var scope = new TensorScope()) whole = SftTrainer.Loss(model, data, Pad).Item();
        Assert.Equal(whole, SftTrainer.Evaluate(model, data, Pad, batchSize: 1), 1e-5);   // fp32 sums in another order
        Assert.Equal(whole, SftTrainer.Evaluate(model, data, Pad, batchSize: 3), 1e-5);
        Assert.All(model.NamedParameters(), p => Assert.Null(p.Tensor.Grad));
    }

    [Fact]
    public void DpoEvaluationIsThePairMeanOverAllPairsWhateverTheBatching()
    {
        var rng = new Rng(8);
        using var policy = LlamaModel.Create(Tiny, TestDevices.Reference, rng.Fork());
        using var reference = LlamaModel.Create(Tiny, TestDevices.Reference, rng.Fork());
        PairExample[] pairs =
        [
            new([1, 5, 6, Eos], [1, 5, 7, 8, Eos], 0, 0, true, true), new([1, 9, 10, Eos], [1, 9, 11, Eos], 1, 1, true, true),
            new([1, 12, Eos], [1, 13, 14, Eos], 1, 1, true, true), new([1, 3, 4, Eos], [1, 3, 5, 6, 7, Eos], 0, 0, true, true),
        ];
        double wholeLoss, wholeAccuracy;
        using (var scope = new TensorScope())
        {
            var (loss, accuracy) = DpoTrainer.Loss(policy, reference, pairs, 0.1, Pad);
            (wholeLoss, wholeAccuracy) = (loss.Item(), accuracy);
        }
        foreach (int batch in new[] { 1, 3 })
        {
            var (loss, accuracy) = DpoTrainer.Evaluate(policy, reference, pairs, 0.1, Pad, batch);
            Assert.Equal(wholeLoss, loss, 1e-5);
            Assert.Equal(wholeAccuracy, accuracy, 1e-12);
        }
        Assert.All(policy.NamedParameters(), p => Assert.Null(p.Tensor.Grad));
    }

    [Theory]
    [InlineData(ScoreTrainer.Kind.Reward)]
    [InlineData(ScoreTrainer.Kind.Cost)]
    public void ScoreEvaluationIsThePairMeanOverAllPairsWhateverTheBatching(ScoreTrainer.Kind kind)
    {
        var rng = new Rng(6);
        using var model = ScoreModel.Create(LlamaModel.Create(Tiny, TestDevices.Reference, rng.Fork()), rng.Fork());
        PairExample[] pairs =
        [
            new([1, 5, 6, Eos], [1, 5, 7, 8, Eos], 0, 0, true, false), new([1, 9, 10, Eos], [1, 9, 11, Eos], 1, 0, true, true),
            new([1, 12, Eos], [1, 13, 14, Eos], 1, 1, false, false), new([1, 3, 4, Eos], [1, 3, 5, 6, 7, Eos], 0, 0, true, false),
        ];
        (double Loss, double Accuracy, double Sign) whole;
        using (var scope = new TensorScope())
        {
            var (loss, accuracy, sign) = ScoreTrainer.Loss(model, pairs, kind, Pad, 0.01);
            whole = (loss.Item(), accuracy, sign);
        }
        foreach (int batch in new[] { 1, 3 })
        {
            var (loss, accuracy, sign) = ScoreTrainer.EvaluateWithLoss(model, pairs, kind, Pad, 0.01, ScoreLossType.SequenceWise, batch);
            Assert.Equal(whole.Accuracy, accuracy, 1e-12);
            if (kind == ScoreTrainer.Kind.Cost) Assert.Equal(whole.Sign, sign, 1e-12);
            else Assert.True(double.IsNaN(sign));
            // The regulariser is a mean over the batch's scores too, so the pair-weighted mean of batch losses is exact.
            Assert.Equal(whole.Loss, loss, 1e-5);
        }
        Assert.All(model.NamedParameters(), p => Assert.Null(p.Tensor.Grad));
    }
}
