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
    private readonly MemoryCounters _counters = new();

    /// <summary>The most bytes the pool may reserve (live + cached), or 0 for no limit but the machine's.</summary>
    public long LimitBytes { get; set; }

    public MemoryStats Stats => _counters.Stats;

    /// <summary>Starts new high-water marks from the current levels.</summary>
    public void ResetPeak() => _counters.ResetPeak();

    /// <summary>A zero-filled block of at least <paramref name="bytes"/> bytes (the size class's length).</summary>
    public byte[] Allocate(long bytes)
    {
        long block = Math.Max(bytes, Math.Min(SizeClasses.Round(bytes), Array.MaxLength));
        var p = TakeCached(block) ?? AllocateNew(bytes, block);
        _counters.Add(live: bytes);
        p.AsSpan(0, checked((int)bytes)).Clear();
        return p;
    }

    /// <summary>Returns a block to its class for reuse.</summary>
    public void Free(byte[] p, long bytes)
    {
        lock (_lock)
        {
            if (!_free.TryGetValue(p.LongLength, out var stack)) _free[p.LongLength] = stack = new Stack<byte[]>();
            stack.Push(p);
        }
        _counters.Add(live: -bytes, cached: p.LongLength);
    }

    /// <summary>Drops every cached block and lets the garbage collector give the memory back.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var (size, stack) in _free)
            {
                _counters.Add(reserved: -size * stack.Count, cached: -size * stack.Count);
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
            _counters.Add(cached: -block);
            return stack.Pop();
        }
    }

    private byte[] AllocateNew(long bytes, long block)
    {
        for (int attempt = 0; ; attempt++)
        {
            var stats = Stats;
            string? reason = null;
            if (LimitBytes > 0 && stats.ReservedBytes + block > LimitBytes) reason = $"limit {DeviceOutOfMemoryException.Format(LimitBytes)}";
            else
            {
                try
                {
                    var p = GC.AllocateUninitializedArray<byte>(checked((int)block), pinned: true);
                    _counters.Add(reserved: block);
                    return p;
                }
                catch (OutOfMemoryException)
                {
                    reason = "the runtime refused";
                }
            }
            if (attempt == 0 && stats.CachedBytes > 0) { Trim(); continue; }
            throw new DeviceOutOfMemoryException(DeviceOutOfMemoryException.Describe("cpu", bytes, stats, reason));
        }
    }
}
