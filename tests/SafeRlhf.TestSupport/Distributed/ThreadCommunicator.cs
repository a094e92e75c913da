using System.Runtime.InteropServices;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.TestSupport.Distributed;

/// <summary>A data-parallel job inside one process for tests: rank r runs on its own thread and the ranks meet at
/// a barrier. Each collective publishes every rank's bytes, waits, and each rank computes its result from all of
/// them in rank order (the order MPI's two-rank sums use), so results do not depend on thread timing.</summary>
public sealed class ThreadCommunicator : ICommunicator
{
    private readonly Group _group;

    private ThreadCommunicator(Group group, int rank) { _group = group; Rank = rank; }

    /// <summary>Runs <paramref name="body"/> once per rank, each on its own thread, and returns the results by rank;
    /// an exception on any rank is rethrown.</summary>
    public static T[] RunRanks<T>(int worldSize, Func<ICommunicator, T> body)
    {
        var group = new Group(worldSize);
        var results = new T[worldSize];
        var errors = new Exception?[worldSize];
        var threads = Enumerable.Range(0, worldSize).Select(r => new Thread(() =>
        {
            try { results[r] = body(new ThreadCommunicator(group, r)); }
            catch (Exception e) { errors[r] = e; group.Barrier.RemoveParticipant(); }
        }, 16 << 20)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        foreach (var e in errors) if (e is not null) throw new AggregateException(e);
        return results;
    }

    public int Rank { get; }
    public int WorldSize => _group.Size;
    public string Transport => "threads";

    public void Barrier() => _group.Barrier.SignalAndWait();

    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged
    {
        var all = Exchange(MemoryMarshal.AsBytes(data));
        all[root].CopyTo(MemoryMarshal.AsBytes(data));
        Barrier();
    }

    public void AllReduceSum<T>(Span<T> data) where T : unmanaged
    {
        CommunicatorChecks.Summable<T>();
        var all = Exchange(MemoryMarshal.AsBytes(data));
        Sum<T>(all, 0, data.Length).CopyTo(data);
        Barrier();
    }

    public void AllGather<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Sizes(send.Length, recv.Length, WorldSize, "AllGather");
        var all = Exchange(MemoryMarshal.AsBytes(send));
        var dst = MemoryMarshal.AsBytes(recv);
        for (int r = 0; r < WorldSize; r++) all[r].CopyTo(dst[(r * all[r].Length)..]);
        Barrier();
    }

    public void ReduceScatterSum<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Summable<T>();
        CommunicatorChecks.Sizes(recv.Length, send.Length, WorldSize, "ReduceScatterSum");
        var all = Exchange(MemoryMarshal.AsBytes(send));
        Sum<T>(all, Rank * recv.Length, recv.Length).CopyTo(recv);
        Barrier();
    }

    public void AllReduceSum(IReadOnlyList<Tensor> tensors, long bucketBytes)
    {
        foreach (var t in tensors)
        {
            CommunicatorChecks.Reducible(t);
            if (t.DType == DType.F32) { var a = t.ToArray<float>(); AllReduceSum<float>(a); Write(t, a); }
            else { var a = t.ToArray<double>(); AllReduceSum<double>(a); Write(t, a); }
        }
    }

    public void Abort(int exitCode) => throw new InvalidOperationException($"rank {Rank} aborted the job with code {exitCode}");

    public void Dispose() { }

    private static void Write<T>(Tensor t, T[] values) where T : unmanaged =>
        t.Backend.Write(t.Storage, t.DType.ByteCount(t.Offset), MemoryMarshal.AsBytes(values.AsSpan()));

    private byte[][] Exchange(ReadOnlySpan<byte> mine)
    {
        _group.Slots[Rank] = mine.ToArray();
        Barrier();
        return _group.Slots;
    }

    private T[] Sum<T>(byte[][] all, int start, int count) where T : unmanaged
    {
        var result = new T[count];
        for (int i = 0; i < count; i++)
        {
            if (typeof(T) == typeof(float)) { float s = 0; foreach (var b in all) s += MemoryMarshal.Cast<byte, float>(b)[start + i]; result[i] = (T)(object)s; }
            else if (typeof(T) == typeof(double)) { double s = 0; foreach (var b in all) s += MemoryMarshal.Cast<byte, double>(b)[start + i]; result[i] = (T)(object)s; }
            else { long s = 0; foreach (var b in all) s += MemoryMarshal.Cast<byte, long>(b)[start + i]; result[i] = (T)(object)s; }
        }
        return result;
    }

    private sealed class Group(int size)
    {
        public int Size { get; } = size;
        public Barrier Barrier { get; } = new(size);
        public byte[][] Slots { get; } = new byte[size][];
    }
}
