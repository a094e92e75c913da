using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests;

/// <summary>Model-level consistency on tiny random configs (reference backend, F64).</summary>
public sealed class LlamaModelTests
{
    private static readonly Device Dev = TestDevices.Reference;

    private static LlamaConfig Tiny(bool tied = false) => new()
    {
        Dim = 8, HiddenDim = 12, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 11, SeqLen = 16, TiedEmbeddings = tied,
    };

    private static LlamaModel Model(bool tied = false, ulong seed = 1)
    {
        var m = LlamaModel.Create(Tiny(tied), Dev, new Rng(seed), DType.F64);
        // Larger weights than the 0.02 init so that differences between code paths show.
        using (GradMode.NoGrad())
            foreach (var (_, p) in m.NamedParameters())
                if (p.Rank == 2) p.Backend.Unary(UnaryOp.Scale, p, p, 20, 0);
        return m;
    }

    private static Tensor Ints(int[] v, params int[] dims) => Tensor.FromArray(Dev, v, dims);

    private static double[] Logits(LlamaModel m, int[] tokens, int[]? positions = null, double[]? mask = null, int batch = 1)
    {
        int t = tokens.Length / batch;
        positions ??= Enumerable.Range(0, tokens.Length).Select(i => i % t).ToArray();
        using var scope = new TensorScope();
        var h = m.Forward(Ints(tokens, batch, t), Ints(positions, batch, t), mask is null ? null : Tensor.FromArray(Dev, mask, batch, t));
        return m.Logits(h).ToDoubleArray();
    }

    private static void Close(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tol = 1e-10)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])), $"[{i}] {expected[i]} vs {actual[i]}");
    }

    [Fact]
    public void KvCacheDecodingMatchesFullForward()
    {
        using var m = Model();
        int[] tokens = [1, 5, 3, 9, 2, 7];
        var full = Logits(m, tokens);
        using var cache = new KvCache(Dev, m.Config, 1, 8, DType.F64);
        var pieces = new List<double>();
        foreach (var (start, len) in new[] { (0, 3), (3, 1), (4, 2) })
        {
            using var scope = new TensorScope();
            var h = m.Forward(Ints(tokens[start..(start + len)], 1, len), Ints(Enumerable.Range(start, len).ToArray(), 1, len), null, cache);
            pieces.AddRange(m.Logits(h).ToDoubleArray());
        }
        Close(full, pieces.ToArray());
    }

    [Fact]
    public void LeftAndRightPaddingGiveTheUnpaddedLogits()
    {
        using var m = Model();
        int[] seq = [4, 2, 8];
        var alone = Logits(m, seq);
        const int V = 11;
        // Row 0 left-padded by two (positions start at 0 on the first real token), row 1 right-padded.
        int[] tokens = [0, 0, 4, 2, 8, 4, 2, 8, 0, 0];
        int[] positions = [0, 0, 0, 1, 2, 0, 1, 2, 3, 4];
        double[] mask = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0];
        var batched = Logits(m, tokens, positions, mask, batch: 2);
        Close(alone, batched.AsSpan(2 * V, 3 * V));
        Close(alone, batched.AsSpan(5 * V, 3 * V));
    }

    [Fact]
    public void GradientCheckpointingGivesTheSameGradients()
    {
        double[] Grads(bool checkpoint)
        {
            using var m = Model(seed: 3);
            m.GradientCheckpointing = checkpoint;
            using (var scope = new TensorScope())
            {
                var h = m.Forward(Ints([1, 2, 3, 4], 1, 4), Ints([0, 1, 2, 3], 1, 4));
                var logits = m.Logits(h).Reshape(4, 11);
                Ops.CrossEntropy(logits, Ints([2, 3, 4, 5], 4)).Backward();
            }
            return m.NamedParameters().SelectMany(p => p.Tensor.Grad!.ToDoubleArray()).ToArray();
        }
        var plain = Grads(false);
        Assert.Contains(plain, g => Math.Abs(g) > 1e-6);
        Close(plain, Grads(true), 1e-10);
    }

    [Fact]
    public void RecomputeKeepsOnlyBlockInputsAndBackwardLeavesNothingBehind()
    {
        var config = new LlamaConfig { Dim = 32, HiddenDim = 96, NLayers = 4, NHeads = 4, NKvHeads = 2, VocabSize = 11, SeqLen = 64 };
        const int t = 48;
        (long Retained, long Left) Run(bool recompute)
        {
            var dev = new Device(new SafeRlhf.Backends.Cpu.Reference.ReferenceBackend(new SafeRlhf.Backends.Cpu.CpuAllocator()));
            using var m = LlamaModel.Create(config, dev, new Rng(2), DType.F64);
            m.GradientCheckpointing = recompute;
            var tokens = Tensor.FromArray(dev, Enumerable.Range(0, t).Select(i => i % 11).ToArray(), 1, t);
            var positions = Tensor.FromArray(dev, Enumerable.Range(0, t).ToArray(), 1, t);
            long weights = dev.Backend.Memory.LiveBytes;
            long retained;
            using (var scope = new TensorScope())
            {
                Tensor hidden;
                using (var forward = new TensorScope()) hidden = forward.Keep(m.Forward(tokens, positions));
                retained = dev.Backend.Memory.LiveBytes - weights;
                hidden.Sum().Backward();
            }
            long grads = m.NamedParameters().Sum(p => (p.Tensor.Grad?.Numel ?? 0) * sizeof(double));
            return (retained, dev.Backend.Memory.LiveBytes - weights - grads);
        }
        var plain = Run(recompute: false);
        var recomputed = Run(recompute: true);
        Assert.Equal(0, plain.Left);
        Assert.Equal(0, recomputed.Left);
        // Block inputs are [1, 48, 32] doubles (12 KiB) per layer; a block's activations are several times that.
        long blockInput = t * config.Dim * sizeof(double);
        Assert.True(recomputed.Retained <= (config.NLayers + 3) * blockInput + 2 * t * sizeof(double),
            $"recompute retained {recomputed.Retained} bytes");
        Assert.True(plain.Retained > 4 * recomputed.Retained, $"plain {plain.Retained} vs recompute {recomputed.Retained}");
    }

    [Fact]
    public void LoraStartsAtTheBaseModelAndTrainsOnlyAdapters()
    {
        using var m = Model(seed: 4);
        int[] tokens = [3, 1, 4, 1];
        var before = Logits(m, tokens);
        m.AddLora(rank: 2, alpha: 4, ["wq", "wv", "w2"], new Rng(9));
        Close(before, Logits(m, tokens));                                  // B = 0 at init
        var trainable = m.TrainableParameters().Select(p => p.Name).ToList();
        Assert.Equal(2 * 3 * 2, trainable.Count);                          // (a, b) × 3 targets × 2 layers
        Assert.All(trainable, n => Assert.Contains(".lora.", n));
        // Move the adapters, then switching them off recovers the base model exactly.
        using (GradMode.NoGrad())
            foreach (var (_, p) in m.TrainableParameters()) p.Backend.Fill(p, 0.1);
        var adapted = Logits(m, tokens);
        Assert.True(adapted.Zip(before).Max(p => Math.Abs(p.First - p.Second)) > 1e-3);
        m.SetLoraEnabled(false);
        Close(before, Logits(m, tokens));
    }

    [Fact]
    public void ScoreModelEndScoresPickTheLastRealToken()
    {
        using var m = Model(seed: 5);
        using var sm = ScoreModel.Create(m, new Rng(6));
        using var scope = new TensorScope();
        var scores = sm.Forward(Ints([1, 2, 3, 4, 5, 6], 2, 3), Ints([0, 1, 2, 0, 1, 2], 2, 3), null);
        var end = ScoreModel.EndScores(scores, [1, 2]).ToDoubleArray();
        var all = scores.ToDoubleArray();
        Assert.Equal(all[1], end[0]);
        Assert.Equal(all[5], end[1]);
    }

    [Fact]
    public void SamplingIsSeededAndGreedyIsArgmax()
    {
        using var m = Model(seed: 7);
        var greedy = Generator.Generate(m, [1, 2], 6, new SamplingOptions { Temperature = 0 });
        // Greedy equals step-by-step argmax of full (uncached) forwards.
        var seq = new List<int> { 1, 2 };
        for (int i = 0; i < 6; i++)
        {
            var logits = Logits(m, seq.ToArray());
            seq.Add(Sampler.ArgMax(logits.AsSpan((seq.Count - 1) * 11, 11)));
        }
        Assert.Equal(seq.Skip(2), greedy);
        var a = Generator.Generate(m, [1, 2], 8, new SamplingOptions { Temperature = 1.0, TopP = 0.9, Seed = 11 });
        var b = Generator.Generate(m, [1, 2], 8, new SamplingOptions { Temperature = 1.0, TopP = 0.9, Seed = 11 });
        Assert.Equal(a, b);
    }

    [Fact]
    public void TopPKeepsOnlyTheNucleus()
    {
        double[] logits = [Math.Log(0.5), Math.Log(0.3), Math.Log(0.15), Math.Log(0.05)];
        var sampler = new Sampler(new SamplingOptions { TopP = 0.7, Seed = 3 });
        var seen = Enumerable.Range(0, 400).Select(_ => sampler.Next(logits)).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
        var penalised = new Sampler(new SamplingOptions { Temperature = 0, RepetitionPenalty = 10 });
        Assert.Equal(1, penalised.Next(logits, [0]));
    }
}
