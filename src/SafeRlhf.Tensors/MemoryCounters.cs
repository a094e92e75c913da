namespace SafeRlhf.Tensors;

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
