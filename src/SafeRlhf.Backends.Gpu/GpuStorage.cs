using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

/// <summary>Device memory of a <see cref="GpuBackend"/>: a byte buffer taken from the backend's pool
/// (its capacity may exceed <see cref="Storage.SizeInBytes"/>) and handed back to the pool when freed.</summary>
public sealed class GpuStorage : Storage
{
    private readonly BufferPool _pool;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;

    internal GpuStorage(GpuBackend backend, BufferPool pool, MemoryBuffer1D<byte, Stride1D.Dense> buffer, long sizeInBytes)
        : base(backend, sizeInBytes)
    {
        _pool = pool;
        _buffer = buffer;
    }

    /// <summary>The whole pooled buffer (at least <see cref="Storage.SizeInBytes"/> bytes).</summary>
    public MemoryBuffer1D<byte, Stride1D.Dense> Buffer =>
        _buffer ?? throw new ObjectDisposedException(nameof(GpuStorage), "device storage used after it was freed");

    /// <summary>The storage bytes as a device view.</summary>
    public ArrayView<byte> Bytes => Buffer.View;

    protected override void Free()
    {
        var b = _buffer;
        _buffer = null;
        if (b is not null) _pool.Return(b, SizeInBytes);
    }
}
