using System.Runtime.InteropServices;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The ranks of an MPI job (mpirun, srun) over host memory, through native/src/mpi/comm_mpi.cpp.
/// Tensors must live in CPU storage. An MPI error becomes a <see cref="CommunicatorException"/> with MPI's text.</summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private IntPtr _comm;
    private byte[] _bucket = [];

    private MpiCommunicator(IntPtr comm, int rank, int worldSize)
    {
        _comm = comm;
        Rank = rank;
        WorldSize = worldSize;
    }

    /// <summary>True when this build of the native library includes the MPI transport.</summary>
    public static bool IsAvailable
    {
        get
        {
            NativeMethods.Check(NativeMethods.sr_comm_transports(out uint t), "sr_comm_transports");
            return (t & (1u << NativeMethods.CommMpi)) != 0;
        }
    }

    /// <summary>Initialises MPI (if needed) and joins the job's world.</summary>
    public static MpiCommunicator Create()
    {
        Run(NativeMethods.sr_comm_create_mpi(out IntPtr comm, out int rank, out int size), "sr_comm_create_mpi");
        return new MpiCommunicator(comm, rank, size);
    }

    public int Rank { get; }
    public int WorldSize { get; }
    public string Transport => "mpi";

    public void Barrier() => Run(NativeMethods.sr_comm_barrier(Handle), "sr_comm_barrier");

    public void Broadcast<T>(Span<T> data, int root) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(data);
        fixed (byte* p = bytes) Run(NativeMethods.sr_comm_broadcast(Handle, p, bytes.Length, NativeMethods.CommU8, root), "sr_comm_broadcast");
    }

    public void AllReduceSum<T>(Span<T> data) where T : unmanaged
    {
        CommunicatorChecks.Summable<T>();
        fixed (T* p = data) Run(NativeMethods.sr_comm_all_reduce_sum(Handle, p, data.Length, TypeCode<T>()), "sr_comm_all_reduce_sum");
    }

    public void AllGather<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Sizes(send.Length, recv.Length, WorldSize, "AllGather");
        var s = MemoryMarshal.AsBytes(send);
        var r = MemoryMarshal.AsBytes(recv);
        fixed (byte* ps = s)
        fixed (byte* pr = r)
            Run(NativeMethods.sr_comm_all_gather(Handle, ps, pr, s.Length, NativeMethods.CommU8), "sr_comm_all_gather");
    }

    public void ReduceScatterSum<T>(ReadOnlySpan<T> send, Span<T> recv) where T : unmanaged
    {
        CommunicatorChecks.Summable<T>();
        CommunicatorChecks.Sizes(recv.Length, send.Length, WorldSize, "ReduceScatterSum");
        fixed (T* ps = send)
        fixed (T* pr = recv)
            Run(NativeMethods.sr_comm_reduce_scatter_sum(Handle, ps, pr, recv.Length, TypeCode<T>()), "sr_comm_reduce_scatter_sum");
    }

    /// <summary>Tensors of at least half a bucket are reduced where they lie; smaller ones are packed (by dtype,
    /// in list order) into one reusable host bucket, reduced together and unpacked.</summary>
    public void AllReduceSum(IReadOnlyList<Tensor> tensors, long bucketBytes)
    {
        if (bucketBytes <= 0) throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "the bucket size must be positive");
        foreach (var t in tensors) CommunicatorChecks.Reducible(t);
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            var packed = new List<Tensor>();
            long used = 0;
            foreach (var t in tensors)
            {
                if (t.DType != dtype) continue;
                var bytes = TensorBytes(t);
                if (bytes.Length * 2L >= bucketBytes) { ReduceInPlace(bytes, dtype); continue; }
                if (used + bytes.Length > bucketBytes) { ReduceBucket(packed, used, dtype); packed.Clear(); used = 0; }
                packed.Add(t);
                used += bytes.Length;
            }
            if (packed.Count > 0) ReduceBucket(packed, used, dtype);
        }
    }

    public void Abort(int exitCode) => Run(NativeMethods.sr_comm_abort(Handle, exitCode), "sr_comm_abort");

    /// <summary>Leaves the job (finalizes MPI when this communicator initialised it).</summary>
    public void Dispose()
    {
        var c = _comm;
        _comm = IntPtr.Zero;
        if (c != IntPtr.Zero) NativeMethods.sr_comm_destroy(c);
    }

    private IntPtr Handle => _comm != IntPtr.Zero ? _comm : throw new ObjectDisposedException(nameof(MpiCommunicator));

    private void ReduceBucket(List<Tensor> packed, long used, DType dtype)
    {
        if (_bucket.Length < used) _bucket = GC.AllocateUninitializedArray<byte>(checked((int)used), pinned: true);
        var bucket = _bucket.AsSpan(0, (int)used);
        int at = 0;
        foreach (var t in packed) { var b = TensorBytes(t); b.CopyTo(bucket[at..]); at += b.Length; }
        ReduceInPlace(bucket, dtype);
        at = 0;
        foreach (var t in packed) { var b = TensorBytes(t); bucket.Slice(at, b.Length).CopyTo(b); at += b.Length; }
    }

    private void ReduceInPlace(Span<byte> bytes, DType dtype)
    {
        int type = dtype == DType.F32 ? NativeMethods.CommF32 : NativeMethods.CommF64;
        long count = bytes.Length / dtype.ByteCount(1);
        fixed (byte* p = bytes) Run(NativeMethods.sr_comm_all_reduce_sum(Handle, p, count, type), "sr_comm_all_reduce_sum");
    }

    private static Span<byte> TensorBytes(Tensor t)
    {
        if (t.Storage is not CpuStorage s)
            throw new NotSupportedException($"the MPI communicator moves host memory; {t} is not in CPU storage (device buffers need the NCCL communicator)");
        return s.Bytes.Slice(checked((int)t.DType.ByteCount(t.Offset)), checked((int)t.DType.ByteCount(t.Numel)));
    }

    private static int TypeCode<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? NativeMethods.CommF32
        : typeof(T) == typeof(double) ? NativeMethods.CommF64
        : typeof(T) == typeof(long) ? NativeMethods.CommI64
        : NativeMethods.CommU8;

    private static void Run(NativeStatus status, string function)
    {
        if (status == NativeStatus.Ok) return;
        string message = Marshal.PtrToStringUTF8(NativeMethods.sr_last_error()) ?? "";
        throw new CommunicatorException($"{function} failed ({status}): {message}");
    }
}
