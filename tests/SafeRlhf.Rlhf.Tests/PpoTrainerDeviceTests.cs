using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>PPO-Lagrangian with LoRA adapters on the actor (reference = adapters off) and on both critics runs the
/// same steps on the GPU kernels (ILGPU's CPU accelerator) as on the native CPU backend: the same rollouts, losses,
/// rewards, costs and λ, to float32 accuracy.</summary>
public sealed class PpoTrainerDeviceTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 32, HiddenDim = 64, NLayers = 1, NHeads = 2, NKvHeads = 1, VocabSize = 40, SeqLen = 32,
    };

    private const int Pad = 0, Eos = 2;

    private static List<StepMetrics> Run(Device device, int steps)
    {
        var rng = new Rng(11);
        using var actor = LlamaModel.Create(Tiny, device, rng.Fork());
        actor.AddLora(rank: 4, alpha: 8, ["wq", "wv", "w1"], rng.Fork());
        using var rewardModel = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var costModel = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var rewardCritic = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        using var costCritic = ScoreModel.Create(LlamaModel.Create(Tiny, device, rng.Fork()), rng.Fork());
        rewardCritic.CopyFrom(rewardModel);
        costCritic.CopyFrom(costModel);
        rewardCritic.Backbone.AddLora(rank: 2, alpha: 4, ["wq", "wo"], rng.Fork());
        costCritic.Backbone.AddLora(rank: 2, alpha: 4, ["wq", "wo"], rng.Fork());
        foreach (var frozen in new[] { rewardModel, costModel })
            foreach (var (_, p) in frozen.NamedParameters()) p.RequiresGrad = false;

        var options = new PpoOptions
        {
            Steps = steps, BatchSize = 3, MaxNewTokens = 4, ActorLr = 1e-2, CriticLr = 1e-2, KlCoeff = 0.1, LambdaLr = 0.5,
        };
        int[][] prompts = [[1, 5, 6, 7], [1, 8, 9], [1, 10, 11, 12, 13]];
        using var trainer = new PpoTrainer(RlMode.PpoLagrangian, actor, reference: null, rewardModel, costModel, rewardCritic, costCritic,
            options, r => prompts[r.NextInt(prompts.Length)], new Rng(3), Pad, Eos);
        return Enumerable.Range(0, steps).Select(_ => trainer.Step()).ToList();
    }

    [Fact]
    public void LoraPpoLagrangianStepsAgreeOnIlgpuAndNative()
    {
        var native = Run(TestDevices.Native, steps: 2);
        var ilgpu = Run(TestDevices.IlgpuCpu, steps: 2);
        for (int s = 0; s < native.Count; s++)
        {
            Assert.Equal(native[s].Values.Keys.Order(), ilgpu[s].Values.Keys.Order());
            Assert.Equal(native[s].Values["tokens"], ilgpu[s].Values["tokens"]);       // the same rollouts
            foreach (var (key, expected) in native[s].Values)
            {
                double actual = ilgpu[s].Values[key];
                Assert.True(double.IsFinite(expected), $"step {s + 1} {key} = {expected} on native");
                Assert.True(System.Math.Abs(actual - expected) <= 1e-3 * System.Math.Max(1, System.Math.Abs(expected)),
                    $"step {s + 1} {key}: native {expected}, ilgpu {actual}");
            }
        }
        // The actor trained: the second step's λ moved and the policy moved away from the reference (KL > 0).
        Assert.NotEqual(native[0].Values["lambda"], native[1].Values["lambda"]);
        Assert.True(native[1].Values["kl"] != 0, "the LoRA actor should differ from its adapter-free reference after one update");
    }
}
