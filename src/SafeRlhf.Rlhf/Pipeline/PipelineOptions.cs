using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;

namespace SafeRlhf.Rlhf.Pipeline;

/// <summary>Everything the built-in pipeline needs: the task, the tiny model and each stage's budget.</summary>
public sealed record PipelineOptions
{
    public ulong Seed { get; init; } = 1;
    /// <summary>How the rollouts and evaluations store their KV cache (<see cref="KvCacheType"/>; config "f32" or "bf16").</summary>
    public KvCacheType KvCache { get; init; } = KvCacheType.F32;
    /// <summary>Share of harmful requests among SFT demonstrations, preference pairs, RL and evaluation prompts.</summary>
    public double HarmfulShare { get; init; } = 0.5;
    public double LabelNoise { get; init; } = 0.1;
    public int SftExamples { get; init; } = 4000;
    public int PreferencePairs { get; init; } = 3000;
    public int HeldOutPairs { get; init; } = 500;
    public int EvalPrompts { get; init; } = 256;
    public int ModelDim { get; init; } = 64;
    public int ModelHiddenDim { get; init; } = 160;
    public int ModelLayers { get; init; } = 2;
    public int ModelHeads { get; init; } = 4;
    public int ModelKvHeads { get; init; } = 2;
    public int SeqLen { get; init; } = 48;
    public TrainOptions Sft { get; init; } = new() { Steps = 600, BatchSize = 32, Lr = 2e-3, WarmupRatio = 0.05 };
    public TrainOptions Reward { get; init; } = new() { Steps = 300, BatchSize = 32, Lr = 1e-3, WeightDecay = 0.1 };
    public TrainOptions Cost { get; init; } = new() { Steps = 300, BatchSize = 32, Lr = 1e-3, WeightDecay = 0.1 };
    public PpoOptions Rl { get; init; } = new()
    {
        Steps = 100, BatchSize = 48, MaxNewTokens = 20, ActorLr = 3e-4, CriticLr = 1e-3, KlCoeff = 0.1, Threshold = -1.0,
    };

    /// <summary>The model shape for a vocabulary.</summary>
    public LlamaConfig ModelConfig(int vocabSize) => new()
    {
        Dim = ModelDim, HiddenDim = ModelHiddenDim, NLayers = ModelLayers, NHeads = ModelHeads, NKvHeads = ModelKvHeads,
        VocabSize = vocabSize, SeqLen = SeqLen,
    };
}
