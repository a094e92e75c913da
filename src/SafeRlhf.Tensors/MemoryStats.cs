namespace SafeRlhf.Tensors;

/// <summary>A device's memory counters. Live bytes are what tensors asked for and still hold; reserved bytes
/// are the size-class blocks behind them plus the freed blocks the pool keeps for reuse (cached). Peaks are
/// high-water marks since the device started or since its last peak reset.</summary>
public readonly record struct MemoryStats(long LiveBytes, long PeakLiveBytes, long ReservedBytes, long PeakReservedBytes, long CachedBytes)
{
    /// <summary>Reserved bytes that hold no live data (size-class rounding and the pool's cache).</summary>
    public long WasteBytes => ReservedBytes - LiveBytes;
}

/// <summary>The size classes every device pool rounds requests to: multiples of 64 bytes up to 4 KiB, then 16
/// classes per power of two, so a block is at most 1/16 (6.25 %) larger than the request.</summary>
public static class SizeClasses
{
    public const long Alignment = 64;
    private const int StepsPerDoubling = 16;

    /// <summary>The block size that serves a request of <paramref name="bytes"/> bytes.</summary>
    public static long Round(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes <= 4096) return Math.Max(Alignment, (bytes + Alignment - 1) / Alignment * Alignment);
        int log2 = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)bytes);   // 2^log2 ≤ bytes
        long step = (1L << log2) / StepsPerDoubling;
        return (bytes + step - 1) / step * step;
    }
}

/// <summary>Thrown when a device cannot serve an allocation even after its pool released every cached block.
/// The message says what was asked and what was live.</summary>
public sealed class DeviceOutOfMemoryException(string message) : OutOfMemoryException(message)
{
    /// <summary>The one-line message for a failed request.</summary>
    public static string Describe(string device, long requested, MemoryStats stats, string? reason = null) =>
        $"{device}: out of memory allocating {Format(requested)} ({Format(stats.LiveBytes)} live in tensors, " +
        $"{Format(stats.ReservedBytes)} reserved, peak {Format(stats.PeakLiveBytes)} live" + (reason is null ? ")" : $"; {reason})");

    /// <summary>Bytes as B, KiB, MiB or GiB with three significant digits.</summary>
    public static string Format(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1L << 20 => $"{bytes / 1024.0:0.##} KiB",
        < 1L << 30 => $"{bytes / (double)(1L << 20):0.##} MiB",
        _ => $"{bytes / (double)(1L << 30):0.##} GiB",
    };
}

/// <summary>The counters behind <see cref="MemoryStats"/>, shared by the device pools; thread-safe.</summary>
public sealed class MemoryCounters
{
    private readonly Lock _lock = new();
    private long _live, _peakLive, _reserved, _peakReserved, _cached;

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

    /// <summary>Records changes: bytes handed to (or back from) tensors, blocks taken from (or given back to) the
    /// system, and blocks moved into (or out of) the pool's cache.</summary>
    public void Add(long live = 0, long reserved = 0, long cached = 0)
    {
        lock (_lock)
        {
            _live += live;
            _reserved += reserved;
            _cached += cached;
            _peakLive = Math.Max(_peakLive, _live);
            _peakReserved = Math.Max(_peakReserved, _reserved);
        }
    }
}
