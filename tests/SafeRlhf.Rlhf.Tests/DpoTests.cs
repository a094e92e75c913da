using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Math;
using SafeRlhf.Rlhf.Tests.Oracles;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

public sealed class DpoTests
{
    private static readonly LlamaConfig Tiny = new() { Dim = 16, HiddenDim = 24, NLayers = 1, NHeads = 2, NKvHeads = 1, VocabSize = 12, SeqLen = 16 };

    private static readonly PairExample[] Pairs =
    [
        new([1, 5, 6, 7, 2], [1, 5, 6, 9, 9, 2], 0, 0, true, true),
        new([1, 4, 8, 2], [1, 4, 3, 3, 2], 1, 0, true, true),
        new([1, 10, 11, 2], [1, 10, 2], 0, 0, true, true),
    ];

    /// <summary>Sum of log-probs of tokens from the first differing index, computed token by token.</summary>
    private static double SequenceLogProb(LlamaModel m, int[] seq, int from)
    {
        using var scope = new TensorScope();
        var tokens = Tensor.FromArray(m.Device, seq, 1, seq.Length);
        var pos = Tensor.FromArray(m.Device, Enumerable.Range(0, seq.Length).ToArray(), 1, seq.Length);
        var logp = m.Logits(m.Forward(tokens, pos)).LogSoftmax().ToDoubleArray();
        double sum = 0;
        for (int t = System.Math.Max(from, 1); t < seq.Length; t++) sum += logp[(t - 1) * Tiny.VocabSize + seq[t]];
        return sum;
    }

    [Fact]
    public void LossMatchesTheDoubleReferenceFormula()
    {
        var dev = TestDevices.Reference;
        using var policy = LlamaModel.Create(Tiny, dev, new Rng(1), DType.F64);
        using var reference = LlamaModel.Create(Tiny, dev, new Rng(2), DType.F64);
        var (loss, accuracy) = DpoTrainer.Loss(policy, reference, Pairs, beta: 0.5, padId: 0);

        var pc = new double[Pairs.Length]; var pr = new double[Pairs.Length]; var rc = new double[Pairs.Length]; var rr = new double[Pairs.Length];
        using (GradMode.NoGrad())
            for (int i = 0; i < Pairs.Length; i++)
            {
                var (w, l) = Pairs[i].ByHelpfulness;
                int d = 0;
                while (w[d] == l[d]) d++;
                pc[i] = SequenceLogProb(policy, w, d); pr[i] = SequenceLogProb(policy, l, d);
                rc[i] = SequenceLogProb(reference, w, d); rr[i] = SequenceLogProb(reference, l, d);
            }
        var (expectedLoss, expectedAccuracy) = DpoLoss.Compute(pc, pr, rc, rr, 0.5);
        Assert.Equal(expectedLoss, loss.Item(), 10);
        Assert.Equal(expectedAccuracy, accuracy, 10);
    }

    [Fact]
    public void TrainingRaisesThePreferenceMargin()
    {
        var dev = TestDevices.Native;
        using var policy = LlamaModel.Create(Tiny, dev, new Rng(3));
        using var reference = LlamaModel.Create(Tiny, dev, new Rng(3));
        foreach (var (_, p) in reference.NamedParameters()) p.RequiresGrad = false;
        double before = DpoTrainer.Loss(policy, reference, Pairs, 0.5, 0).Loss.Item();
        DpoTrainer.Train(policy, reference, Pairs, new TrainOptions { Steps = 30, BatchSize = 3, Lr = 1e-2, WarmupRatio = 0 }, 0.5, new Rng(4), 0);
        var (after, accuracy) = DpoTrainer.Loss(policy, reference, Pairs, 0.5, 0);
        Assert.True(after.Item() < before - 0.1, $"DPO loss {before} → {after.Item()}");
        Assert.Equal(1.0, accuracy);
    }
}
