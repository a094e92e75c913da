using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>The FlashAttention-2-style backward: Δ, then one pass over the key tiles that forms the scores once and adds
/// dQ with atomics (two launches and dQ's clear, where the two-pass backward formed them twice in a third launch), with
/// the reference backend's dQ, dK and dV. Shapes cross several key and query tiles (2 × 4 on the CPU accelerator), with
/// GQA, S &gt; T, padding masks and a fully padded batch row.</summary>
public sealed class AttentionBackwardTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Theory]
    [InlineData(2, 9, 9, 4, 2, 16, true)]
    [InlineData(1, 6, 11, 6, 3, 8, false)]
    [InlineData(2, 5, 7, 8, 1, 5, true)]
    public void OnePassMatchesTheReference(int b, int t, int s, int h, int hkv, int d, bool masked)
    {
        var q = Random(70 + s, b * t * h * d);
        var k = Random(71 + s, b * s * hkv * d);
        var v = Random(72 + s, b * s * hkv * d);
        var dOut = Random(73 + s, b * t * h * d);
        var mask = masked ? Enumerable.Range(0, b * s).Select(i => i / s == 1 || i % 4 == 1 ? 0f : 1f).ToArray() : null;
        double scale = 1 / Math.Sqrt(d);

        (double[] Dq, double[] Dk, double[] Dv, DeviceActivity Activity) Run(Device device)
        {
            using var qt = Tensor.FromArray(device, q, b, t, h, d);
            using var kt = Tensor.FromArray(device, k, b, s, hkv, d);
            using var vt = Tensor.FromArray(device, v, b, s, hkv, d);
            using var dot = Tensor.FromArray(device, dOut, b, t, h, d);
            using var mt = mask is null ? null : Tensor.FromArray(device, mask, b, s);
            using var o = Tensor.Zeros(device, DType.F32, b, t, h, d);
            using var lse = Tensor.Zeros(device, DType.F32, b, h, t);
            device.Backend.Attention(qt, kt, vt, mt, o, lse, scale);
            using var dq = Tensor.Uninitialized(device, DType.F32, b, t, h, d);
            using var dk = Tensor.Zeros(device, DType.F32, b, s, hkv, d);
            using var dv = Tensor.Zeros(device, DType.F32, b, s, hkv, d);
            var profiled = new ProfilingBackend(device.Backend);
            var activity = profiled.Measure(() => profiled.AttentionBackward(qt, kt, vt, mt, o, lse, dot, dq, dk, dv, scale));
            return (dq.ToArray<double>(), dk.ToArray<double>(), dv.ToArray<double>(), activity);
        }

        var g = Run(Gpu);
        var r = Run(Ref);
        Assert.Equal(2, g.Activity.Launches);   // Δ and the one pass over the key tiles
        Assert.Equal(1, g.Activity.Memsets);    // dQ cleared for the atomic adds
        AssertClose(g.Dq, r.Dq, 1e-5, 1e-4, "dq");
        AssertClose(g.Dk, r.Dk, 1e-5, 1e-4, "dk");
        AssertClose(g.Dv, r.Dv, 1e-5, 1e-4, "dv");
    }
}
