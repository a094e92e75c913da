using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu;

/// <summary>Host memory shared by the CPU backends (reference and native): a zero-filled, pinned block of a
/// <see cref="CpuAllocator"/>, returned to it when the last tensor view is disposed.</summary>
public sealed class CpuStorage : Storage
{
    private readonly CpuAllocator _allocator;
    private byte[]? _block;

    public CpuStorage(IBackend backend, CpuAllocator allocator, long sizeInBytes) : base(backend, sizeInBytes)
    {
        if (sizeInBytes > Array.MaxLength)
            throw new DeviceOutOfMemoryException(
                $"cpu: a tensor of {DeviceOutOfMemoryException.Format(sizeInBytes)} exceeds the largest single CPU buffer (2 GiB); split it or use a smaller batch");
        _allocator = allocator;
        _block = allocator.Allocate(sizeInBytes);
    }

    /// <summary>The bytes of this storage.</summary>
    public Span<byte> Bytes => (_block ?? throw new ObjectDisposedException(nameof(CpuStorage))).AsSpan(0, (int)SizeInBytes);

    /// <summary>The storage viewed as elements of <typeparamref name="T"/>.</summary>
    public Span<T> As<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Bytes);

    protected override void Free()
    {
        var p = _block;
        _block = null;
        if (p is not null) _allocator.Free(p, SizeInBytes);
    }
}
