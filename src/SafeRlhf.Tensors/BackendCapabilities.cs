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
