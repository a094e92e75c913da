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
    private long _live, _peakLive, _reserved, _peakReserved, _cached;

    public BufferPool(Accelerator accelerator, long cacheLimitBytes)
    {
        _accelerator = accelerator;
        CacheLimitBytes = cacheLimitBytes;
    }

    public long CacheLimitBytes { get; }

    public MemoryStats Stats
    {
        get { lock (_lock) return new MemoryStats(_live, _peakLive, _reserved, _peakReserved, _cached); }
    }

    public void ResetPeak()
    {
        lock (_lock)
        {
            _peakLive = _live;
            _peakReserved = _reserved;
        }
    }

    /// <summary>A buffer of at least <paramref name="bytes"/> bytes (contents undefined).</summary>
    public MemoryBuffer1D<byte, Stride1D.Dense> Rent(long bytes)
    {
        long size = SizeClasses.Round(bytes);
        lock (_lock)
        {
            _live += bytes;
            _peakLive = Math.Max(_peakLive, _live);
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _cached -= size;
                return stack.Pop();
            }
        }
        var buffer = AllocateNew(bytes, size);
        lock (_lock)
        {
            _reserved += size;
            _peakReserved = Math.Max(_peakReserved, _reserved);
        }
        return buffer;
    }

    /// <summary>Takes back a buffer that served a request of <paramref name="bytes"/> bytes.</summary>
    public void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer, long bytes)
    {
        long size = buffer.Length;
        lock (_lock)
        {
            _live -= bytes;
            if (_cached + size <= CacheLimitBytes)
            {
                if (!_free.TryGetValue(size, out var stack)) _free[size] = stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
                stack.Push(buffer);
                _cached += size;
                return;
            }
            _reserved -= size;
        }
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
                    _reserved -= size;
                    _cached -= size;
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
                lock (_lock) _live -= bytes;
                throw new DeviceOutOfMemoryException(DeviceOutOfMemoryException.Describe(_accelerator.Name, bytes, Stats, e.Message));
            }
        }
    }

    public void Dispose() => Trim();
}
