using System.Runtime.InteropServices;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>P/Invoke bindings of the communicator (native/include/saferlhf.h, sr_comm_*).</summary>
internal static unsafe partial class NativeMethods
{
    public const int CommMpi = 1, CommNccl = 2;
    public const int CommU8 = 0, CommF32 = 1, CommF64 = 2, CommI64 = 3;

    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_transports(out uint transports);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_create_mpi(out IntPtr comm, out int rank, out int size);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_destroy(IntPtr comm);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_barrier(IntPtr comm);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_broadcast(IntPtr comm, void* data, long count, int dtype, int root);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_all_reduce_sum(IntPtr comm, void* data, long count, int dtype);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_all_gather(IntPtr comm, void* send, void* recv, long count, int dtype);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_reduce_scatter_sum(IntPtr comm, void* send, void* recv, long count, int dtype);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_comm_abort(IntPtr comm, int code);
}
