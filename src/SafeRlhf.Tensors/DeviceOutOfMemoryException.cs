namespace SafeRlhf.Tensors;

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
