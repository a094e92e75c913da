using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>Uploads and readbacks hand ILGPU a raw address of managed memory: it must stay pinned for the copy, or a
/// compacting collection on another thread moves the array under it (the copy then reads or writes the old place).</summary>
public sealed class HostTransferTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void TransfersStayCorrectWhileAnotherThreadCompactsTheHeap()
    {
        const int n = 256, rounds = 20000;
        var expected = new float[n];
        for (int i = 0; i < n; i++) expected[i] = i + 1;
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                _ = new byte[64 << 10];  // garbage, so that compaction moves live arrays
                GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: true);
            }
        }) { IsBackground = true };
        collector.Start();
        int wrong = 0;
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                using var t = Tensor.FromArray(Gpu, (float[])expected.Clone(), n);
                var back = t.ToArray<float>();
                for (int i = 0; i < n; i++)
                    if (back[i] != expected[i]) { wrong++; break; }
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        Assert.True(wrong == 0, $"{wrong} of {rounds} upload/readback round trips returned other values");
    }
}
