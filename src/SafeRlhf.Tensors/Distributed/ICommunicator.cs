namespace SafeRlhf.Tensors.Distributed;

/// <summary>The ranks of a data-parallel job and the collectives between them. Every rank calls the same
/// collectives in the same order with the same sizes; a call returns when this rank's part is complete.
/// <see cref="LocalCommunicator"/> is the one-rank job (every collective is the identity); MPI and NCCL
/// implementations live with the backends whose memory they move.</summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0 to <see cref="WorldSize"/> − 1.</summary>
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>What moves the bytes ("local", "mpi", "nccl"), for logs and errors.</summary>
    string Transport { get; }

    void Barrier();

    /// <summary>data [n] on every rank receives rank <paramref name="root"/>'s data [n].</summary>
    void Broadcast<T>(Span<T> data, int root) where T : unmanaged;

    /// <summary>data [n] becomes the element-wise sum over ranks (float, double and long only).</summary>
    void AllReduceSum<T>(Span<T> data) where T : unmanaged;

    /// <summary>recv [WorldSize · n] receives every rank's send [n], rank r's at offset r · n.</summary>
    void AllGather<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged;

    /// <summary>send [WorldSize · n] is summed over ranks; this rank receives block <see cref="Rank"/> of the sum
    /// in recv [n] (float, double and long only).</summary>
    void ReduceScatterSum<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged;

    /// <summary>Each tensor (contiguous F32 or F64, on this communicator's device) becomes its sum over ranks, in
    /// place. Small tensors travel packed together in buckets of at most <paramref name="bucketBytes"/>.</summary>
    void AllReduceSum(IReadOnlyList<Tensor> tensors, long bucketBytes);

    /// <summary>Ends every rank of the job with <paramref name="exitCode"/>.</summary>
    void Abort(int exitCode);
}

/// <summary>A collective failed (an MPI or NCCL error, a rank that left, mismatched sizes); the message carries
/// the transport's own error text.</summary>
public sealed class CommunicatorException(string message) : Exception(message);
