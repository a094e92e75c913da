namespace SafeRlhf.Tensors;

// Optional capabilities a backend may offer beside IBackend; callers use them when present, with identical results.

/// <summary>A backend that reduces the sum of squares of many tensors with one wait for the device
/// (the global gradient norm), instead of one readback per tensor.</summary>
public interface IBatchedSumOfSquares
{
    /// <summary>Σ over <paramref name="tensors"/> of <see cref="IBackend.SumOfSquares"/>, each term as that
    /// method computes it, added on the host in order.</summary>
    double SumOfSquares(IReadOnlyList<Tensor> tensors);
}

/// <summary>A backend that can hand out storage without zeroing it, for callers that overwrite every byte
/// before reading any (uploads, kernel outputs): saves a device memset per allocation.</summary>
public interface IUninitializedAllocator
{
    /// <summary>Storage for <paramref name="count"/> elements of <paramref name="dtype"/> with undefined contents.</summary>
    Storage AllocateUninitialized(DType dtype, long count);
}

/// <summary>A backend that samples next tokens on the device, so only the token ids come back to the host.</summary>
public interface IDeviceSampler
{
    /// <summary>False for a decorator whose inner backend cannot sample on its device.</summary>
    bool SamplesOnDevice { get; }

    /// <summary>logits [.., V] (rows = numel / V) → one token id per row, computed exactly as the host sampler does
    /// in fp64 (greedy at <paramref name="temperature"/> 0, else softmax at that temperature, nucleus
    /// <paramref name="topP"/>, the draw <paramref name="uniforms"/>[row] ∈ [0, 1)). A row with a negative
    /// uniform is not sampled and returns −1.</summary>
    int[] Sample(Tensor logits, double temperature, double topP, ReadOnlySpan<double> uniforms);
}

/// <summary>A backend whose QuantizedMatMul, QuantizedMatMulBackward and Dequantize read Q8_0/Q4_0/K-quant matrices
/// with their rows interleaved by 16 (<see cref="DType.Q8_0x16"/> … <see cref="DType.Q6_Kx16"/>), and that makes them.</summary>
public interface IRowInterleaving
{
    /// <summary>False for a decorator whose inner backend does not interleave rows.</summary>
    bool InterleavesRows { get; }

    /// <summary>dst (an interleaved type [M, K]) = w (its file layout [M, K], contiguous, M a multiple of 16)
    /// in the layout <see cref="QuantBlocks.InterleaveRows"/> defines.</summary>
    void InterleaveRows(Tensor w, Tensor dst);
}
