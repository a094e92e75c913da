using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Loading;

/// <summary>How <see cref="LlamaLoader"/> turns stored tensors into model parameters.</summary>
public sealed record LlamaLoadOptions
{
    /// <summary>Storage types that the frozen-storage presets keep as stored.</summary>
    public static readonly IReadOnlySet<DType> StorageTypes = new HashSet<DType> { DType.F16, DType.BF16, DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K };

    /// <summary>Dense weights are converted to this compute type: F32 (default) or F64.</summary>
    public DType ComputeType { get; init; } = DType.F32;

    /// <summary>Projection and classifier matrices stored in one of these types (F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) are kept
    /// as frozen storage instead of being converted (the base weights under LoRA). Empty: convert everything.</summary>
    public IReadOnlySet<DType> KeepStorage { get; init; } = new HashSet<DType>();

    /// <summary>Quantize the dense projection and classifier matrices to Q8_0 or Q4_0 (frozen) on load; matrices
    /// whose row length is not a multiple of 32 stay dense. Null: no quantization.</summary>
    public DType? Quantize { get; init; }

    /// <summary>Shares frozen matrices (kept as stored or quantized on load) with the other models loaded through the
    /// same cache, instead of holding a copy per model. Null: every model owns its weights.</summary>
    public FrozenWeightCache? Shared { get; init; }

    /// <summary>Frozen Q8_0/Q4_0/K-quant matrices (kept or quantized on load) whose row count is a multiple of 16 are
    /// stored with their rows interleaved (Q8_0x16 … Q6_Kx16): the same weights and products, in the
    /// layout the native CPU backend multiplies without unpacking. Needs a backend that offers it (<see cref="Ops.CanInterleaveRows"/>).</summary>
    public bool InterleaveRows { get; init; }

    /// <summary>Caps the configured sequence length (a model trained on 4096 tokens used for shorter ones).</summary>
    public int? MaxSeqLen { get; init; }

    /// <summary>Keep every F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K matrix as stored (F32 compute).</summary>
    public static LlamaLoadOptions FrozenStorage => new() { KeepStorage = StorageTypes };

    /// <summary>Throws when the combination cannot run.</summary>
    public LlamaLoadOptions Validate()
    {
        if (!ComputeType.IsCompute())
            throw new ArgumentException($"load options: compute type must be F32 or F64, got {ComputeType}");
        foreach (var t in KeepStorage)
            if (!StorageTypes.Contains(t))
                throw new ArgumentException($"load options: {t} is not a storage type that can be kept (F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
        if (Quantize is { } q && q is not (DType.Q8_0 or DType.Q4_0))
            throw new ArgumentException($"load options: quantize to {q}: only Q8_0 and Q4_0 are quantized types");
        bool quantized = Quantize is not null || KeepStorage.Any(t => t.IsQuantized());
        if (quantized && ComputeType != DType.F32)
            throw new ArgumentException($"load options: quantized weights compute in F32, not {ComputeType}");
        if (MaxSeqLen is <= 0) throw new ArgumentException($"load options: max sequence length must be positive, got {MaxSeqLen}");
        return this;
    }
}
