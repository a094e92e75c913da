using System.Diagnostics;

namespace SafeRlhf.Tensors.Distributed;

/// <summary>A communicator that measures the wall time this rank spends inside collectives (waiting for the other
/// ranks included), for profiles that report the share of a step spent communicating.</summary>
public sealed class TimedCommunicator(ICommunicator inner) : ICommunicator
{
    private long _ticks;

    /// <summary>Seconds spent in collectives since creation or the last <see cref="Reset"/>.</summary>
    public double Seconds => Stopwatch.GetElapsedTime(0, _ticks).TotalSeconds;

    /// <summary>Collectives called since creation or the last <see cref="Reset"/>.</summary>
    public long Calls { get; private set; }

    public void Reset() { _ticks = 0; Calls = 0; }

    public int Rank => inner.Rank;
    public int WorldSize => inner.WorldSize;
    public string Transport => inner.Transport;

    public void Barrier() => Time(inner.Barrier);

    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        inner.Broadcast(data, root);
        Add(start);
    }

    public void AllReduceSum<T>(Span<T> data) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllReduceSum(data);
        Add(start);
    }

    public void AllGather<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        inner.AllGather(send, recv);
        Add(start);
    }

    public void ReduceScatterSum<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        long start = Stopwatch.GetTimestamp();
        inner.ReduceScatterSum(send, recv);
        Add(start);
    }

    public void AllReduceSum(IReadOnlyList<Tensor> tensors, long bucketBytes) => Time(() => inner.AllReduceSum(tensors, bucketBytes));

    public void Abort(int exitCode) => inner.Abort(exitCode);

    /// <summary>The inner communicator is not owned: disposing this one leaves it open.</summary>
    public void Dispose() { }

    private void Time(Action collective)
    {
        long start = Stopwatch.GetTimestamp();
        collective();
        Add(start);
    }

    private void Add(long start)
    {
        _ticks += Stopwatch.GetTimestamp() - start;
        Calls++;
    }
}
