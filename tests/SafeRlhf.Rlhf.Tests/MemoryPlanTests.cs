using SafeRlhf.Backends.Cpu;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Planning;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Meta;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Rlhf.Tests;

/// <summary>The meta device plans exactly what the native backend allocates: the same allocations, byte for byte,
/// and the same peak, for one step of every stage.</summary>
public sealed class MemoryPlanTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 64, HiddenDim = 96, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 50, SeqLen = 64,
    };

    public static TheoryData<string, string, int, bool> Steps => new()
    {
        { "sft", "f32", 0, false },
        { "sft", "f32", 0, true },
        { "reward", "q8_0", 4, false },
        { "cost", "f32", 0, true },
        { "dpo", "f32", 0, false },
        { "dpo", "q4_0", 4, true },
        { "ppo", "f32", 0, false },
        { "ppo-lag", "q4_0", 4, true },
    };

    private static DType Base(string name) => name switch { "q8_0" => DType.Q8_0, "q4_0" => DType.Q4_0, _ => DType.F32 };

    [Theory]
    [MemberData(nameof(Steps))]
    public void TheMetaDevicePlansWhatTheNativeBackendAllocates(string stage, string baseType, int loraRank, bool recompute)
    {
        var settings = new PlanSettings
        {
            Stage = stage, Config = Tiny, BaseType = Base(baseType), LoraRank = loraRank, Batch = 3, PromptLength = 12,
            NewTokens = 5, GradientCheckpointing = recompute,
        };

        var native = new ProfilingBackend(new NativeBackend(new CpuAllocator()));
        long nativeWeights = 0;
        MemoryPlanner.RunStep(settings, new Device(native), () => nativeWeights = native.Memory.LiveBytes);

        var meta = new ProfilingBackend(new MetaBackend());
        long metaWeights = 0;
        MemoryPlanner.RunStep(settings, new Device(meta), () => metaWeights = meta.Memory.LiveBytes);

        var nativeAllocations = native.Get("Allocate")!;
        var metaAllocations = meta.Get("Allocate")!;
        Assert.True(nativeAllocations.Calls > 100);
        Assert.Equal(nativeAllocations.Calls, metaAllocations.Calls);
        Assert.Equal(nativeAllocations.Bytes, metaAllocations.Bytes);
        Assert.Equal(nativeWeights, metaWeights);
        Assert.Equal(native.Memory.PeakLiveBytes, meta.Memory.PeakLiveBytes);
        Assert.Equal(0, native.Memory.LiveBytes);                 // everything the step made is gone
        Assert.Equal(0, meta.Memory.LiveBytes);
    }

    [Fact]
    public void APlanSplitsItsPeakAndNamesEveryPhaseOfAnRlStep()
    {
        var plan = MemoryPlan.Of(new PlanSettings
        {
            Stage = "ppo-lag", Config = Tiny, BaseType = DType.Q4_0, LoraRank = 4, Batch = 2, PromptLength = 8, NewTokens = 4,
        });
        Assert.Equal(["rollout", "experience", "actor update", "critic update"], plan.Phases.Select(p => p.Phase));
        Assert.True(plan.AtPeak[MemoryCategory.Weights] > 0);
        Assert.True(plan.AtPeak[MemoryCategory.TrainableState] > 0);
        Assert.True(plan.Phases[0].LiveByCategory[MemoryCategory.KvCache] > 0);
        Assert.Equal(plan.PeakReservedBytes, plan.AtPeak.Values.Sum() + plan.WasteAtPeak);
        Assert.Equal(plan.PeakReservedBytes, plan.Phases.Max(p => p.ReservedBytes));
    }

    [Fact]
    public void LoraModelsShareOneCopyOfTheFrozenBase()
    {
        // Wide enough that the projection matrices outweigh the embedding and the adapters.
        var config = Tiny with { Dim = 128, HiddenDim = 256 };
        PlanSettings Settings(int rank) => new()
        {
            Stage = "ppo-lag", Config = config, BaseType = rank > 0 ? DType.Q8_0 : DType.F32, LoraRank = rank, Batch = 1, PromptLength = 4, NewTokens = 2,
        };
        long embedding = (long)config.VocabSize * config.Dim;
        long perModelF32 = (embedding + (2L * config.NLayers + 1) * config.Dim) * sizeof(float);
        long matricesQ8 = DType.Q8_0.ByteCount(config.ParameterCount - embedding - (2L * config.NLayers + 1) * config.Dim);
        var full = MemoryPlan.Of(Settings(0));
        var lora = MemoryPlan.Of(Settings(1));
        // Full fine-tuning: actor, reference, reward, cost and two critics each hold all their weights in F32.
        Assert.True(full.AtPeak[MemoryCategory.Weights] >= 6 * config.ParameterCount * sizeof(float));
        // LoRA: five models (the reference is the actor without adapters) with their own F32 embeddings and norms over
        // one copy of the Q8_0 matrices (five copies would be 5 × matricesQ8), plus rank-1 adapters and heads.
        long weights = lora.AtPeak[MemoryCategory.Weights];
        Assert.True(weights < 5 * perModelF32 + 2 * matricesQ8, $"{weights} bytes of weights; one copy of the matrices is {matricesQ8}");
        Assert.True(weights > 5 * perModelF32 + matricesQ8);
    }
}
