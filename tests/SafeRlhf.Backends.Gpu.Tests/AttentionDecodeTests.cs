using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>Single-token attention (T = 1) takes the split-KV path once the keys exceed one range (8 keys on the CPU
/// accelerator): two launches (partials, log-sum-exp combine) instead of the forward's one, with the reference
/// backend's o and lse. Ranges that end mid-tile, masked keys, a fully padded batch row, GQA groups wider than a row
/// group, an odd head size and keys read in place from a larger cache.</summary>
public sealed class AttentionDecodeTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Theory]
    [InlineData(1, 8, 4, 2, 8, false, 0, 1)]   // one range: the forward kernel
    [InlineData(1, 9, 4, 2, 8, false, 0, 2)]   // 8 + 1 keys
    [InlineData(2, 21, 6, 3, 12, true, 0, 2)]  // 8 + 8 + 5 keys, masked, second batch row all padding
    [InlineData(2, 16, 8, 1, 5, true, 20, 2)]  // two full ranges, 8 heads on one KV head (two row groups), in a cache
    [InlineData(1, 30, 2, 2, 4, false, 32, 2)] // one query head per KV head
    public void SplitKeysMatchTheReference(int b, int s, int h, int hkv, int d, bool masked, int cache, int launches)
    {
        var q = Random(60 + s, b * h * d);
        int rows = cache == 0 ? s : cache;
        var k = Random(61 + s, b * rows * hkv * d);
        var v = Random(62 + s, b * rows * hkv * d);
        var mask = masked ? Enumerable.Range(0, b * s).Select(i => i / s == 1 || i % 4 == 2 ? 0f : 1f).ToArray() : null;
        double scale = 1 / Math.Sqrt(d);

        (Tensor O, Tensor Lse, DeviceActivity Activity) Run(Device device)
        {
            using var qt = Tensor.FromArray(device, q, b, 1, h, d);
            using var kAll = Tensor.FromArray(device, k, b, rows, hkv, d);
            using var vAll = Tensor.FromArray(device, v, b, rows, hkv, d);
            using var kt = kAll.Narrow(1, 0, s);
            using var vt = vAll.Narrow(1, 0, s);
            using var mt = mask is null ? null : Tensor.FromArray(device, mask, b, s);
            var o = Tensor.Zeros(device, DType.F32, b, 1, h, d);
            var lse = Tensor.Zeros(device, DType.F32, b, h, 1);
            var profiled = new ProfilingBackend(device.Backend);
            var activity = profiled.Measure(() => profiled.Attention(qt, kt, vt, mt, o, lse, scale));
            return (o, lse, activity);
        }

        var (go, glse, a) = Run(Gpu);
        var (ro, rlse, _) = Run(Ref);
        using (go) using (glse) using (ro) using (rlse)
        {
            Assert.Equal(launches, a.Launches);
            AssertClose((go, ro), 1e-5, 1e-4, "o");
            AssertClose((glse, rlse), 1e-5, 1e-5, "lse");
        }
    }
}
