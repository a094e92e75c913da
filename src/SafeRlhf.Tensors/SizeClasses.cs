namespace SafeRlhf.Tensors;

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
