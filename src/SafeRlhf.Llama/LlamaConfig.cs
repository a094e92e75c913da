using SafeRlhf.Tensors;

namespace SafeRlhf.Llama;

/// <summary>LLaMA hyper-parameters. <see cref="NKvHeads"/> &lt; <see cref="NHeads"/> gives grouped-query attention.</summary>
public sealed record LlamaConfig
{
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int NLayers { get; init; }
    public required int NHeads { get; init; }
    public required int NKvHeads { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>Longest sequence (prompt + response) the model is used with; as a weight file states it, the context
    /// length the model was trained with.</summary>
    public required int SeqLen { get; init; }
    public double NormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    /// <summary>Meta/llama2.c weights use interleaved pairs; HF checkpoints are un-permuted on load to match.</summary>
    public RopeStyle RopeStyle { get; init; } = RopeStyle.Interleaved;
    /// <summary>The output classifier shares the token embedding matrix (a weight file without output.weight).</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>Dim / NHeads (0 while NHeads is not positive, so that an invalid config can still be printed).</summary>
    public int HeadDim => NHeads > 0 ? Dim / NHeads : 0;
    public int KvDim => NKvHeads * HeadDim;

    /// <summary>Weights in the model: embedding, per layer 4 attention + 3 feed-forward matrices and 2 norms, the
    /// final norm and (unless tied) the classifier.</summary>
    public long ParameterCount => (long)Parameters;

    /// <summary><see cref="ParameterCount"/> in double (exact below 2⁵³), so that an absurd file header cannot overflow.</summary>
    public double Parameters
    {
        get
        {
            double dim = Dim, kv = (double)NKvHeads * HeadDim;
            double perLayer = 2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * (double)HiddenDim * dim;
            return (TiedEmbeddings ? 1 : 2) * (double)VocabSize * dim + NLayers * perLayer + dim;
        }
    }

    /// <summary>LLaMA-1 7B as in its HF config.json (rms_norm_eps 1e-6).</summary>
    public static LlamaConfig Llama7B => new()
    {
        Dim = 4096, HiddenDim = 11008, NLayers = 32, NHeads = 32, NKvHeads = 32, VocabSize = 32000, SeqLen = 2048, NormEps = 1e-6,
    };

    /// <summary>LLaMA-2 7B (rms_norm_eps 1e-5, 4096 context).</summary>
    public static LlamaConfig Llama2_7B => Llama7B with { SeqLen = 4096, NormEps = 1e-5 };

    /// <summary>A tiny model for tests and quick runs: the built-in pipeline's shape (dim 64, 2 layers, 4 heads /
    /// 2 KV heads, hidden 160) with the 512-token vocabulary of the llama2.c tok512 tokenizer.</summary>
    public static LlamaConfig Tiny => new()
    {
        Dim = 64, HiddenDim = 160, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 512, SeqLen = 256,
    };

    /// <summary>The llama2.c stories110M shape (dim 768, 12 layers, 12 heads, hidden 2048) with the 32000-token
    /// LLaMA vocabulary.</summary>
    public static LlamaConfig Llama110M => new()
    {
        Dim = 768, HiddenDim = 2048, NLayers = 12, NHeads = 12, NKvHeads = 12, VocabSize = 32000, SeqLen = 1024,
    };

    /// <summary>The preset names that <see cref="TryPreset"/> knows, in the order the driver lists them.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = ["tiny", "llama-110m", "llama-7b", "llama2-7b"];

    /// <summary>The preset of that name, or null when there is none.</summary>
    public static LlamaConfig? TryPreset(string name) => name switch
    {
        "tiny" => Tiny,
        "llama-110m" => Llama110M,
        "llama-7b" => Llama7B,
        "llama2-7b" => Llama2_7B,
        _ => null,
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the field when the shape is inconsistent.</summary>
    public LlamaConfig Validate() => Inconsistency() is { } message
        ? throw new ArgumentException($"invalid LLaMA config: {message} ({this})")
        : this;

    /// <summary>The first inconsistency of the numbers, or null when there is none.</summary>
    public string? Inconsistency()
    {
        if (!(Dim > 0 && HiddenDim > 0 && NLayers > 0 && VocabSize > 0 && SeqLen > 0)) return "sizes must be positive";
        if (!(NHeads > 0 && Dim % NHeads == 0)) return $"dim {Dim} must be a multiple of n_heads {NHeads}";
        if (!(NKvHeads > 0 && NHeads % NKvHeads == 0)) return $"n_heads {NHeads} must be a multiple of n_kv_heads {NKvHeads}";
        if (HeadDim % 2 != 0) return $"head dim {HeadDim} must be even for RoPE";
        if (!(NormEps > 0 && double.IsFinite(NormEps))) return "norm eps must be positive";
        if (!(RopeTheta > 0 && double.IsFinite(RopeTheta))) return "rope theta must be positive";
        return null;
    }
}
