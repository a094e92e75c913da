using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Selftest;

/// <summary>Whole-model checks against the native CPU backend with identical weights: the loss and every
/// parameter gradient of a LLaMA forward/backward, the parameters after one AdamW training step (gradient
/// clipping included), a greedy rollout's tokens, and a sampled rollout's tokens against the host sampler
/// (the device samples; the CPU reads the logits back).</summary>
public sealed class ModelChecks(Device device, Device cpu, SelftestReport report)
{
    /// <summary>A tiny LLaMA, and one LLaMA-7B-width layer (dim 4096, 32 heads × 128, hidden 11008, vocab 32000).</summary>
    public static readonly LlamaConfig Tiny = new()
    {
        Dim = 64, HiddenDim = 96, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 64, SeqLen = 32,
    };

    public static readonly LlamaConfig Llama7BLayer = new()
    {
        Dim = 4096, HiddenDim = 11008, NLayers = 1, NHeads = 32, NKvHeads = 32, VocabSize = 32000, SeqLen = 64,
    };

    private const int Tokens = 12;

    public void RunAll(LlamaConfig config, string name)
    {
        string shape = $"{name} {config.NLayers}L d{config.Dim} T{Tokens}";
        report.Run("llama loss and gradients", shape, () =>
        {
            var (loss, grads) = LossAndGrads(device, config);
            var (refLoss, refGrads) = LossAndGrads(cpu, config);
            double error = SelftestReport.ScaledError([loss], [refLoss]);
            foreach (var (k, g) in grads) error = Math.Max(error, SelftestReport.ScaledError(g, refGrads[k]));
            return new SelftestRow("llama loss and gradients", shape, error <= 1e-3, error, 1e-3, $"{grads.Count} parameter gradients");
        });
        report.Run("training step (clip + adamw)", shape, () =>
        {
            var p = TrainStep(device, config);
            var r = TrainStep(cpu, config);
            double error = 0;
            foreach (var (k, v) in p) error = Math.Max(error, SelftestReport.ScaledError(v, r[k]));
            return new SelftestRow("training step (clip + adamw)", shape, error <= 1e-4, error, 1e-4, $"{p.Count} parameters after the step");
        });
        report.Run("rollout (greedy)", shape, () =>
        {
            var a = Rollout(device, config, new SamplingOptions { Temperature = 0 });
            var b = Rollout(cpu, config, new SamplingOptions { Temperature = 0 });
            int mismatches = a.Zip(b).Count(t => t.First != t.Second);
            return new SelftestRow("rollout (greedy)", shape, mismatches == 0, mismatches, 0, $"{a.Count} tokens: {string.Join(' ', a)}");
        });
        report.Run("rollout (T=0.8, top-p 0.9)", shape, () =>
        {
            var options = new SamplingOptions { Temperature = 0.8, TopP = 0.9, Seed = 11 };
            var a = Rollout(device, config, options);
            var b = Rollout(cpu, config, options);
            int mismatches = a.Zip(b).Count(t => t.First != t.Second);
            return new SelftestRow("rollout (T=0.8, top-p 0.9)", shape, mismatches == 0, mismatches, 0, $"{a.Count} tokens: {string.Join(' ', a)}");
        });
    }

    private static int[] Ids(LlamaConfig c, int count, int salt) =>
        Enumerable.Range(0, count).Select(i => (i * 37 + salt * 11 + 1) % c.VocabSize).ToArray();

    private static (double Loss, Dictionary<string, double[]> Grads) LossAndGrads(Device d, LlamaConfig c)
    {
        using var scope = new TensorScope();
        using var model = LlamaModel.Create(c, d, new Rng(3));
        var loss = Loss(d, c, model);
        loss.Backward();
        return (loss.Item(), model.TrainableParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad!.ToArray<double>()));
    }

    private static Tensor Loss(Device d, LlamaConfig c, LlamaModel model)
    {
        var hidden = model.Forward(Tensor.FromArray(d, Ids(c, Tokens, 0), 1, Tokens), Tensor.FromArray(d, Enumerable.Range(0, Tokens).ToArray(), 1, Tokens));
        var logits = model.Logits(hidden).Reshape(Tokens, c.VocabSize);
        return Ops.CrossEntropy(logits, Tensor.FromArray(d, Ids(c, Tokens, 1), Tokens));
    }

    private static Dictionary<string, double[]> TrainStep(Device d, LlamaConfig c)
    {
        using var scope = new TensorScope();
        using var model = LlamaModel.Create(c, d, new Rng(4));
        using var optimizer = new AdamW(model.TrainableParameters(), lr: 1e-3, weightDecay: 0.01);
        Loss(d, c, model).Backward();
        optimizer.ClipGradNorm(0.5);
        optimizer.Update();
        return model.TrainableParameters().ToDictionary(p => p.Name, p => p.Tensor.ToArray<double>());
    }

    private static List<int> Rollout(Device d, LlamaConfig c, SamplingOptions options)
    {
        using var scope = new TensorScope();
        using var model = LlamaModel.Create(c, d, new Rng(5));
        return Generator.Generate(model, Ids(c, 4, 2), 8, options);
    }
}
