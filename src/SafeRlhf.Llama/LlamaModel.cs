using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama;

/// <summary>The LLaMA decoder: token embedding, pre-norm transformer blocks with rotary GQA attention and
/// SwiGLU feed-forward, final RMSNorm and the output classifier. Parameter names follow Meta's checkpoints.</summary>
public sealed class LlamaModel : Module
{
    private readonly TransformerBlock[] _layers;

    private LlamaModel(LlamaConfig config, Device device, Embedding embedding, TransformerBlock[] layers, RmsNorm norm, Linear? output)
    {
        Config = config;
        Device = device;
        TokEmbeddings = Child("tok_embeddings", embedding);
        _layers = layers;
        for (int i = 0; i < layers.Length; i++) Child($"layers.{i}", layers[i]);
        Norm = Child("norm", norm);
        if (output is not null) Output = Child("output", output);
    }

    public LlamaConfig Config { get; }
    public Device Device { get; }
    public Embedding TokEmbeddings { get; }
    public IReadOnlyList<TransformerBlock> Layers => _layers;
    public RmsNorm Norm { get; }
    /// <summary>The classifier, or null when it is tied to the token embedding.</summary>
    public Linear? Output { get; }

    /// <summary>How the KV caches made for this model by generation and rollouts store keys and values (an inference
    /// setting, not saved with the weights; default <see cref="KvCacheType.F32"/>).</summary>
    public KvCacheType KvCacheStorage { get; set; } = KvCacheType.F32;

    /// <summary>Gradient checkpointing: keep only each block's input during training and recompute the block's
    /// activations in the backward pass (see <see cref="Recompute"/>).</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>Models with at least this many weights recompute block activations by default: their activations
    /// outgrow their weights at training batch sizes, while the extra forward costs about a third of a step.</summary>
    public const long RecomputeByDefaultFromParameters = 100_000_000;

    /// <summary>Sets <see cref="GradientCheckpointing"/> from a config value (null: on from
    /// <see cref="RecomputeByDefaultFromParameters"/> weights up).</summary>
    public void UseGradientCheckpointing(bool? setting) =>
        GradientCheckpointing = setting ?? Config.ParameterCount >= RecomputeByDefaultFromParameters;

    /// <summary>A randomly initialised model (N(0, 0.02²) weights, unit norms).</summary>
    public static LlamaModel Create(LlamaConfig config, Device device, Rng rng, DType dtype = DType.F32)
    {
        config.Validate();
        const double std = 0.02;
        var embedding = new Embedding(rng.NormalTensor(device, dtype, 0, std, config.VocabSize, config.Dim));
        var layers = new TransformerBlock[config.NLayers];
        for (int i = 0; i < layers.Length; i++) layers[i] = TransformerBlock.Create(config, device, rng, dtype, std);
        var norm = RmsNorm.Create(device, dtype, config.Dim, config.NormEps);
        var output = config.TiedEmbeddings ? null : Linear.Create(device, dtype, config.Dim, config.VocabSize, rng, std);
        return new LlamaModel(config, device, embedding, layers, norm, output);
    }

    /// <summary>Builds the model from tensors keyed by Meta names (tok_embeddings.weight, layers.N.attention.wq.weight, …).
    /// Missing tensors or wrong dims fail with the tensor's name.</summary>
    public static LlamaModel FromTensors(LlamaConfig config, Device device, IReadOnlyDictionary<string, Tensor> tensors)
    {
        config.Validate();
        Tensor Take(string name, params int[] dims)
        {
            if (!tensors.TryGetValue(name, out var t)) throw new KeyNotFoundException($"weights have no tensor '{name}'");
            if (!t.Shape.Dims.SequenceEqual(dims))
                throw new TensorShapeException($"tensor '{name}' has shape {t.Shape}, the config needs [{string.Join(", ", dims)}]");
            t.Name = name;
            return t;
        }
        var embedding = new Embedding(Take("tok_embeddings.weight", config.VocabSize, config.Dim));
        var layers = new TransformerBlock[config.NLayers];
        for (int i = 0; i < layers.Length; i++)
        {
            string p = $"layers.{i}.";
            layers[i] = new TransformerBlock(config,
                new RmsNorm(Take(p + "attention_norm.weight", config.Dim), config.NormEps),
                new Linear(Take(p + "attention.wq.weight", config.Dim, config.Dim)),
                new Linear(Take(p + "attention.wk.weight", config.KvDim, config.Dim)),
                new Linear(Take(p + "attention.wv.weight", config.KvDim, config.Dim)),
                new Linear(Take(p + "attention.wo.weight", config.Dim, config.Dim)),
                new RmsNorm(Take(p + "ffn_norm.weight", config.Dim), config.NormEps),
                new Linear(Take(p + "feed_forward.w1.weight", config.HiddenDim, config.Dim)),
                new Linear(Take(p + "feed_forward.w2.weight", config.Dim, config.HiddenDim)),
                new Linear(Take(p + "feed_forward.w3.weight", config.HiddenDim, config.Dim)));
        }
        var norm = new RmsNorm(Take("norm.weight", config.Dim), config.NormEps);
        var output = config.TiedEmbeddings ? null : new Linear(Take("output.weight", config.VocabSize, config.Dim));
        return new LlamaModel(config, device, embedding, layers, norm, output);
    }

    /// <summary>tokens I32 [B, T], positions I32 [B, T], keyMask [B, S] (1 real, 0 pad; S = cached + T) or
    /// null → final hidden states [B, T, dim] (after the last RMSNorm).</summary>
    public Tensor Forward(Tensor tokens, Tensor positions, Tensor? keyMask = null, KvCache? cache = null)
    {
        if (tokens.Rank != 2) throw new TensorShapeException($"LlamaModel: tokens must be [B, T], got {tokens.Shape}");
        // Each layer runs in its own scope: its temporaries die when it finishes (those a backward rule needs
        // live on in the tape), and the previous residual stream is dropped as soon as the next one exists.
        Tensor h;
        using (var scope = new TensorScope()) h = scope.Keep(TokEmbeddings.Forward(tokens));
        for (int i = 0; i < _layers.Length; i++)
        {
            var layer = _layers[i];
            int index = i;
            Tensor next;
            using (var scope = new TensorScope())
                next = scope.Keep(GradientCheckpointing && cache is null
                    ? Recompute.Run(x => layer.Forward(x, positions, keyMask, null, index), h, layer.NamedParameters().Select(p => p.Tensor))
                    : layer.Forward(h, positions, keyMask, cache, index));
            h.Dispose();
            h = next;
        }
        cache?.Commit();
        var y = Norm.Forward(h);
        h.Dispose();
        return y;
    }

    /// <summary>hidden [B, T, dim] → logits [B, T, vocab].</summary>
    public Tensor Logits(Tensor hidden) =>
        Output is not null ? Output.Forward(hidden) : Ops.Linear(hidden, TokEmbeddings.Weight);

    /// <summary>Switches every LoRA adapter on or off (off: the frozen base model, used as the reference policy).</summary>
    public void SetLoraEnabled(bool enabled)
    {
        foreach (var layer in _layers)
            foreach (var linear in layer.Linears) linear.LoraEnabled = enabled;
    }

    /// <summary>Adds LoRA adapters to the named projections (wq, wk, wv, wo, w1, w2, w3) and freezes everything else.</summary>
    public void AddLora(int rank, double alpha, IEnumerable<string> targets, Rng rng)
    {
        var set = targets.ToHashSet();
        foreach (var (_, p) in NamedParameters()) p.RequiresGrad = false;
        foreach (var layer in _layers)
            foreach (var (name, linear) in layer.NamedLinears)
                if (set.Contains(name)) linear.AddLora(rank, alpha, rng);
    }
}
