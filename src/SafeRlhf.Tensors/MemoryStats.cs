namespace SafeRlhf.Tensors;

/// <summary>A device's memory counters. Live bytes are what tensors asked for and still hold; reserved bytes
/// are the size-class blocks behind them plus the freed blocks the pool keeps for reuse (cached). Peaks are
/// high-water marks since the device started or since its last peak reset.</summary>
public readonly record struct MemoryStats(long LiveBytes, long PeakLiveBytes, long ReservedBytes, long PeakReservedBytes, long CachedBytes)
{
    /// <summary>Reserved bytes that hold no live data (size-class rounding and the pool's cache).</summary>
    public long WasteBytes => ReservedBytes - LiveBytes;
}
