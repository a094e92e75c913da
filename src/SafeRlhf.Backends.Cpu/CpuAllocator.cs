using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu;

/// <summary>The host memory pool behind every CPU tensor: pinned arrays in the size classes of <see cref="SizeClasses"/>.
/// Freed blocks wait in their class for reuse (so large buffers are not left to the garbage collector between
/// steps); when an allocation fails (or would pass <see cref="LimitBytes"/>) the cache is released and the
/// allocation retried once before a <see cref="DeviceOutOfMemoryException"/> says what was live. One pool per
/// process, shared by the reference and native backends; thread-safe. A tensor that is never disposed is not
/// returned here: its block stays counted as live until the garbage collector takes it.</summary>
public sealed class CpuAllocator
{
    /// <summary>The process's pool.</summary>
    public static CpuAllocator Shared { get; } = new();

    private readonly Dictionary<long, Stack<byte[]>> _free = new();
    private readonly Lock _lock = new();
    private long _live, _peakLive, _reserved, _peakReserved, _cached;

    /// <summary>The most bytes the pool may reserve (live + cached), or 0 for no limit but the machine's.</summary>
    public long LimitBytes { get; set; }

    public MemoryStats Stats
    {
        get { lock (_lock) return new MemoryStats(_live, _peakLive, _reserved, _peakReserved, _cached); }
    }

    /// <summary>Starts new high-water marks from the current levels.</summary>
    public void ResetPeak()
    {
        lock (_lock)
        {
            _peakLive = _live;
            _peakReserved = _reserved;
        }
    }

    /// <summary>A zero-filled block of at least <paramref name="bytes"/> bytes (the size class's length).</summary>
    public byte[] Allocate(long bytes)
    {
        long block = Math.Max(bytes, Math.Min(SizeClasses.Round(bytes), Array.MaxLength));
        var p = TakeCached(block) ?? AllocateNew(bytes, block);
        lock (_lock)
        {
            _live += bytes;
            _peakLive = Math.Max(_peakLive, _live);
        }
        p.AsSpan(0, checked((int)bytes)).Clear();
        return p;
    }

    /// <summary>Returns a block to its class for reuse.</summary>
    public void Free(byte[] p, long bytes)
    {
        long blockBytes = p.LongLength;
        lock (_lock)
        {
            _live -= bytes;
            _cached += blockBytes;
            if (!_free.TryGetValue(blockBytes, out var stack)) _free[blockBytes] = stack = new Stack<byte[]>();
            stack.Push(p);
        }
    }

    /// <summary>Drops every cached block and lets the garbage collector give the memory back.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var (size, stack) in _free)
            {
                _reserved -= size * stack.Count;
                _cached -= size * stack.Count;
                stack.Clear();
            }
        }
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    private byte[]? TakeCached(long block)
    {
        lock (_lock)
        {
            if (!_free.TryGetValue(block, out var stack) || stack.Count == 0) return null;
            _cached -= block;
            return stack.Pop();
        }
    }

    private byte[] AllocateNew(long bytes, long block)
    {
        for (int attempt = 0; ; attempt++)
        {
            string? reason = null;
            lock (_lock)
            {
                if (LimitBytes > 0 && _reserved + block > LimitBytes) reason = $"limit {DeviceOutOfMemoryException.Format(LimitBytes)}";
                else
                {
                    byte[]? p = null;
                    try { p = GC.AllocateUninitializedArray<byte>(checked((int)block), pinned: true); }
                    catch (OutOfMemoryException) { reason = "the runtime refused"; }
                    if (p is not null)
                    {
                        _reserved += block;
                        _peakReserved = Math.Max(_peakReserved, _reserved);
                        return p;
                    }
                }
            }
            if (attempt == 0 && _cached > 0) { Trim(); continue; }
            throw new DeviceOutOfMemoryException(DeviceOutOfMemoryException.Describe("cpu", bytes, Stats, reason));
        }
    }
}
