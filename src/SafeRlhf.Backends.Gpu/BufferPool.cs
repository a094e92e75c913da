using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

/// <summary>A size-class pool of device byte buffers (the classes of <see cref="SizeClasses"/>). Freed buffers
/// wait in their class for reuse until the cached total would exceed <see cref="CacheLimitBytes"/>, when they
/// are disposed instead. A failed device allocation releases the cache and retries once before a
/// <see cref="DeviceOutOfMemoryException"/> says what was live.</summary>
internal sealed class BufferPool : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = new();
    private readonly Lock _lock = new();
    private readonly MemoryCounters _counters = new();

    public BufferPool(Accelerator accelerator, long cacheLimitBytes)
    {
        _accelerator = accelerator;
        CacheLimitBytes = cacheLimitBytes;
    }

    public long CacheLimitBytes { get; }

    public MemoryStats Stats => _counters.Stats;

    public void ResetPeak() => _counters.ResetPeak();

    /// <summary>A buffer of at least <paramref name="bytes"/> bytes (contents undefined).</summary>
    public MemoryBuffer1D<byte, Stride1D.Dense> Rent(long bytes)
    {
        long size = SizeClasses.Round(bytes);
        lock (_lock)
        {
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _counters.Add(live: bytes, cached: -size);
                return stack.Pop();
            }
        }
        var buffer = AllocateNew(bytes, size);
        _counters.Add(live: bytes, reserved: size);
        return buffer;
    }

    /// <summary>Takes back a buffer that served a request of <paramref name="bytes"/> bytes.</summary>
    public void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer, long bytes)
    {
        // On a GPU the next user's memset and kernels queue behind this buffer's last kernel on the same stream. The CPU
        // accelerator gives no such order for host-side memsets, so a buffer is reused only once its kernels are done.
        if (_accelerator.AcceleratorType == AcceleratorType.CPU) _accelerator.Synchronize();
        long size = buffer.Length;
        lock (_lock)
        {
            if (_counters.Stats.CachedBytes + size <= CacheLimitBytes)
            {
                if (!_free.TryGetValue(size, out var stack)) _free[size] = stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
                stack.Push(buffer);
                _counters.Add(live: -bytes, cached: size);
                return;
            }
        }
        _counters.Add(live: -bytes, reserved: -size);
        buffer.Dispose();
    }

    /// <summary>Disposes every cached buffer.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var (size, stack) in _free)
                while (stack.Count > 0)
                {
                    stack.Pop().Dispose();
                    _counters.Add(reserved: -size, cached: -size);
                }
        }
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocateNew(long bytes, long size)
    {
        try { return _accelerator.Allocate1D<byte>(size); }
        catch (Exception first) when (first is OutOfMemoryException or AcceleratorException)
        {
            Trim();
            try { return _accelerator.Allocate1D<byte>(size); }
            catch (Exception e) when (e is OutOfMemoryException or AcceleratorException)
            {
                throw new DeviceOutOfMemoryException(DeviceOutOfMemoryException.Describe(_accelerator.Name, bytes, Stats, e.Message));
            }
        }
    }

    public void Dispose() => Trim();
}
