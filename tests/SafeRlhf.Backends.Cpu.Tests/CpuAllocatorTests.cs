using SafeRlhf.Backends.Cpu;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Tests;

public sealed class CpuAllocatorTests
{
    [Fact]
    public void SizeClassesWasteAtMostOneSixteenth()
    {
        var rng = new Random(1);
        for (int i = 0; i < 100_000; i++)
        {
            long bytes = 4097 + (long)(rng.NextDouble() * rng.NextDouble() * (3L << 30));
            long block = SizeClasses.Round(bytes);
            Assert.True(block >= bytes, $"{bytes} → {block}");
            Assert.True(block - bytes <= bytes / 16, $"{bytes} → {block} wastes {block - bytes}");
        }
        Assert.Equal(64, SizeClasses.Round(0));
        Assert.Equal(4096, SizeClasses.Round(4096));
        Assert.Equal(4096 + 256, SizeClasses.Round(4097));
    }

    [Fact]
    public void CountsLiveReservedAndPeakBytesAndReusesFreedBlocks()
    {
        var pool = new CpuAllocator();
        var a = pool.Allocate(10_000);
        var b = pool.Allocate(20_000);
        Assert.Equal(30_000, pool.Stats.LiveBytes);
        Assert.Equal(a.LongLength + b.LongLength, pool.Stats.ReservedBytes);
        pool.Free(a, 10_000);
        Assert.Equal(20_000, pool.Stats.LiveBytes);
        Assert.Equal(30_000, pool.Stats.PeakLiveBytes);
        Assert.Equal(a.LongLength, pool.Stats.CachedBytes);
        a.AsSpan().Fill(7);
        var c = pool.Allocate(9_999);                     // same size class: the cached block, zero-filled again
        Assert.Same(a, c);
        Assert.All(c.AsSpan(0, 9_999).ToArray(), v => Assert.Equal(0, v));
        pool.ResetPeak();
        Assert.Equal(29_999, pool.Stats.PeakLiveBytes);
    }

    [Fact]
    public void TrimsTheCacheAndRetriesBeforeReportingOutOfMemory()
    {
        var pool = new CpuAllocator { LimitBytes = 1 << 20 };
        var big = pool.Allocate(600_000);
        pool.Free(big, 600_000);                          // cached: 600 kB of the 1 MiB limit
        var other = pool.Allocate(700_000);               // another class: fits only once the cache is dropped
        Assert.Equal(0, pool.Stats.CachedBytes);
        Assert.Equal(700_000, pool.Stats.LiveBytes);
        var ex = Assert.Throws<DeviceOutOfMemoryException>(() => pool.Allocate(500_000));
        Assert.Contains("488.28 KiB", ex.Message);       // what was asked
        Assert.Contains("683.59 KiB live", ex.Message);  // what was live
        Assert.Contains("limit 1 MiB", ex.Message);
        Assert.Equal(700_000, pool.Stats.LiveBytes);      // a failed request leaves the counters as they were
        GC.KeepAlive(other);
    }
}
