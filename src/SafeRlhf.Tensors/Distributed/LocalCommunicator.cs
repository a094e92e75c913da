namespace SafeRlhf.Tensors.Distributed;

/// <summary>The job of one rank: every collective leaves the data as it is (a gather copies send to recv).
/// A process started without mpirun/srun uses it, and so behaves exactly as a single-process engine.</summary>
public sealed class LocalCommunicator : ICommunicator
{
    public static LocalCommunicator Instance { get; } = new();

    private LocalCommunicator() { }

    public int Rank => 0;
    public int WorldSize => 1;
    public string Transport => "local";

    public void Barrier() { }

    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged => CheckRoot(root);

    public void AllReduceSum<T>(Span<T> data) where T : unmanaged => CommunicatorChecks.Summable<T>();

    public void AllGather<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Sizes(send.Length, recv.Length, 1, "AllGather");
        send.CopyTo(recv);
    }

    public void ReduceScatterSum<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Summable<T>();
        CommunicatorChecks.Sizes(recv.Length, send.Length, 1, "ReduceScatterSum");
        send.CopyTo(recv);
    }

    public void AllReduceSum(IReadOnlyList<Tensor> tensors, long bucketBytes)
    {
        foreach (var t in tensors) CommunicatorChecks.Reducible(t);
    }

    public void Abort(int exitCode) => Environment.Exit(exitCode);

    public void Dispose() { }

    private static void CheckRoot(int root)
    {
        if (root != 0) throw new ArgumentOutOfRangeException(nameof(root), root, "the only rank of a local job is 0");
    }
}
