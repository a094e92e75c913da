using SafeRlhf.Llama;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Planning;

/// <summary>One training step to plan: the stage, the model's shape, how its base is stored, LoRA and the batch.</summary>
public sealed record PlanSettings
{
    /// <summary>sft, reward, cost, dpo, ppo or ppo-lag.</summary>
    public required string Stage { get; init; }
    public required LlamaConfig Config { get; init; }
    /// <summary>How the projection and classifier matrices are stored: F32 (trainable unless LoRA), or a frozen
    /// BF16, F16, Q8_0, Q4_0 or K-quant (Q4_K, Q5_K, Q6_K) base (then LoRA is required).</summary>
    public DType BaseType { get; init; } = DType.F32;
    /// <summary>LoRA rank; 0 trains every weight.</summary>
    public int LoraRank { get; init; }
    public string[] LoraTargets { get; init; } = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"];
    public int Batch { get; init; } = 8;
    /// <summary>Prompt tokens (RL stages) or the whole sequence length (sft, reward, cost, dpo).</summary>
    public int PromptLength { get; init; } = 256;
    /// <summary>Generated tokens (RL stages).</summary>
    public int NewTokens { get; init; } = 256;
    /// <summary>Recompute block activations in the backward pass (null: the trainers' default by model size).</summary>
    public bool? GradientCheckpointing { get; init; }
    /// <summary>How the RL stages' rollouts store their KV cache (BF16: 2 bytes per element).</summary>
    public KvCacheType KvCache { get; init; } = KvCacheType.F32;

    public static readonly string[] Stages = ["sft", "reward", "cost", "dpo", "ppo", "ppo-lag"];

    public bool IsRl => Stage is "ppo" or "ppo-lag";

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public PlanSettings Validate()
    {
        if (!Stages.Contains(Stage)) throw new ArgumentException($"stage: unknown stage '{Stage}' (valid: {string.Join(", ", Stages)})");
        Config.Validate();
        if (BaseType is not (DType.F32 or DType.BF16 or DType.F16) && !BaseType.IsQuantized())
            throw new ArgumentException($"base type: {BaseType} is not a weight type (F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
        if (BaseType != DType.F32 && LoraRank == 0)
            throw new ArgumentException($"base type: a {BaseType} base is frozen, so it trains only with LoRA (give a LoRA rank)");
        if (LoraRank < 0) throw new ArgumentException($"LoRA rank: must be ≥ 0, got {LoraRank}");
        if (Batch <= 0) throw new ArgumentException($"batch: must be positive, got {Batch}");
        if (PromptLength < 2) throw new ArgumentException($"prompt length: must be ≥ 2, got {PromptLength}");
        if (IsRl && NewTokens <= 0) throw new ArgumentException($"new tokens: must be positive, got {NewTokens}");
        return this;
    }
}

/// <summary>Runs one training step of a stage on a device and reports its memory: the meta device plans it with
/// no data (any model size), a real device measures it. Model weights are zeros (their values do not change what
/// is allocated); responses run to the full length (no EOS). With LoRA every model shares one copy of the frozen
/// stored-type matrices (BF16, F16, Q8_0, Q4_0), as the training commands do through a
/// <see cref="FrozenWeightCache"/>; F32 tensors (embeddings, norms, a full-precision base) are per model.</summary>
public static class MemoryPlanner
{
    /// <summary>Builds the stage's models on <paramref name="device"/> and runs one step; <paramref name="afterLoad"/>
    /// is called once the weights exist (to read the weight bytes).</summary>
    public static void RunStep(PlanSettings s, Device device, Action? afterLoad = null)
    {
        s.Validate();
        var c = s.Config with { SeqLen = System.Math.Max(s.Config.SeqLen, s.PromptLength + (s.IsRl ? s.NewTokens : 0)) };
        var rng = new Rng(1);
        var owned = new List<IDisposable>();
        try
        {
            bool lora = s.LoraRank > 0;
            var specs = BaseSpecs(c, s.BaseType);
            Dictionary<string, Tensor> shared;
            using (TensorScope.Suspend())
            using (MemoryTags.As(MemoryCategory.Weights))
                shared = specs.Where(p => lora && !p.Value.DType.IsCompute())
                    .ToDictionary(p => p.Key, p => Tensor.Zeros(device, p.Value.DType, p.Value.Dims), StringComparer.Ordinal);
            owned.AddRange(shared.Values);
            LlamaModel Policy(bool trainable)
            {
                using var _ = TensorScope.Suspend();
                using var tag = MemoryTags.As(MemoryCategory.Weights);
                var m = LlamaModel.FromTensors(c, device, PerModel(specs, shared, device));
                owned.Add(m);
                if (lora && trainable) m.AddLora(s.LoraRank, 2.0 * s.LoraRank, s.LoraTargets, rng);
                if (!trainable)
                    foreach (var (_, p) in m.NamedParameters()) p.RequiresGrad = false;
                return m;
            }
            ScoreModel Score(bool trainable)
            {
                var backbone = Policy(trainable);
                using var _ = TensorScope.Suspend();
                using var tag = MemoryTags.As(MemoryCategory.Weights);
                var m = ScoreModel.Create(backbone, rng);
                owned.Add(m);
                if (!trainable)
                    foreach (var (_, p) in m.NamedParameters()) p.RequiresGrad = false;
                return m;
            }

            Action step;
            var train = new TrainOptions { Steps = 1, BatchSize = s.Batch, GradientCheckpointing = s.GradientCheckpointing };
            int[] Tokens(int n) => Enumerable.Range(0, n).Select(i => 1 + i % (c.VocabSize - 1)).ToArray();
            int[] Other(int[] tokens) => [.. tokens[..^1], tokens[^1] % (c.VocabSize - 1) + 1];   // differs in the last token
            switch (s.Stage)
            {
                case "sft":
                {
                    var m = Policy(trainable: true);
                    var data = new[] { new SftTrainer.Example(Tokens(s.PromptLength / 2), Tokens(s.PromptLength - s.PromptLength / 2)) };
                    step = () => SftTrainer.Train(m, data, train, rng, padId: 0);
                    break;
                }
                case "reward" or "cost":
                {
                    var m = Score(trainable: true);
                    var data = new[] { new PairExample(Tokens(s.PromptLength), Other(Tokens(s.PromptLength)), 0, 0, true, false) };
                    var kind = s.Stage == "reward" ? ScoreTrainer.Kind.Reward : ScoreTrainer.Kind.Cost;
                    step = () => ScoreTrainer.Train(m, data, kind, train, rng, padId: 0);
                    break;
                }
                case "dpo":
                {
                    var policy = Policy(trainable: true);
                    var reference = lora ? null : Policy(trainable: false);
                    var data = new[] { new PairExample(Tokens(s.PromptLength), Other(Tokens(s.PromptLength)), 0, 0, true, false) };
                    step = () => DpoTrainer.Train(policy, reference, data, train, 0.1, rng, padId: 0);
                    break;
                }
                default:
                {
                    var actor = Policy(trainable: true);
                    actor.KvCacheStorage = s.KvCache;
                    var reference = lora ? null : Policy(trainable: false);
                    var mode = s.Stage == "ppo" ? RlMode.Ppo : RlMode.PpoLagrangian;
                    var options = new PpoOptions
                    {
                        Steps = 1, BatchSize = s.Batch, MaxNewTokens = s.NewTokens, GradientCheckpointing = s.GradientCheckpointing,
                    };
                    var trainer = new PpoTrainer(mode, actor, reference, Score(false), Score(false), Score(true),
                        mode == RlMode.PpoLagrangian ? Score(true) : null, options, _ => Tokens(s.PromptLength), rng, padId: 0, eosId: -1);
                    owned.Add(trainer);
                    step = () => trainer.Step();
                    break;
                }
            }
            afterLoad?.Invoke();
            step();
        }
        finally
        {
            for (int i = owned.Count - 1; i >= 0; i--) owned[i].Dispose();
        }
    }

    /// <summary>The weights of a LLaMA config by Meta name: projection and classifier matrices in <paramref name="baseType"/>
    /// (where the type can hold them), everything else F32.</summary>
    private static Dictionary<string, (DType DType, int[] Dims)> BaseSpecs(LlamaConfig c, DType baseType) =>
        LlamaLoader.Parameters(c).ToDictionary(p => p.Name, p =>
        {
            bool stored = p.IsLinear && baseType != DType.F32 && (!baseType.IsQuantized() || p.Dims[^1] % baseType.BlockElements() == 0);
            return (stored ? baseType : DType.F32, p.Dims);
        }, StringComparer.Ordinal);

    /// <summary>A model's zero weights: views of the shared frozen matrices, its own tensors for the rest.</summary>
    private static Dictionary<string, Tensor> PerModel(Dictionary<string, (DType DType, int[] Dims)> specs,
        Dictionary<string, Tensor> shared, Device device) =>
        specs.ToDictionary(p => p.Key,
            p => shared.TryGetValue(p.Key, out var t) ? t.Detach() : Tensor.Zeros(device, p.Value.DType, p.Value.Dims),
            StringComparer.Ordinal);
}
