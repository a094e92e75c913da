using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Flash attention (forward and backward) against the reference's one-row-at-a-time attention at sizes that cross
/// the 96-query / 128-key block edges, with GQA, S &gt; T and padding masks. Every backend's attention at small, empty and
/// odd sizes (fully masked queries included) is in the conformance suite of SafeRlhf.Tensors.Tests. T = 1 takes the
/// decode path (dot products per head, no blocks).</summary>
public sealed class NativeAttentionTests
{
    public static TheoryData<int, int, int, int, int, int, bool> Cases() => new()
    {
        // B, T, S, H, Hkv, D, mask
        { 1, 1, 260, 4, 1, 32, false },
        { 3, 1, 37, 4, 2, 16, true },  // decode: one query per sequence, padded keys, GQA
        { 1, 130, 130, 2, 1, 16, true },
        { 1, 100, 260, 2, 2, 8, false },
        { 1, 200, 200, 1, 1, 128, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardAndBackwardMatchReference(int b, int t, int s, int h, int hkv, int d, bool masked)
    {
        var rng = new Rng((ulong)(b * 7 + t * 131 + s * 17 + h * 3 + d));
        var q = Random(rng, b * t * h * d, -2, 2);
        var k = Random(rng, b * s * hkv * d, -2, 2);
        var v = Random(rng, b * s * hkv * d);
        var dOut = Random(rng, b * t * h * d);
        float[]? mask = null;
        if (masked)
        {
            mask = new float[b * s];
            for (int i = 0; i < mask.Length; i++) mask[i] = rng.NextDouble() < 0.3 ? 0f : 1f;
            mask[0] = 0f;  // query 0 (when T = S) sees only key 0: fully masked, o = 0 and lse = −inf
        }
        double scale = d == 0 ? 1 : 1.0 / Math.Sqrt(d);
        var outs = new Tensor[2][];
        int slot = 0;
        foreach (var dev in new[] { ReferenceDevice, NativeDevice })
        {
            var qt = On(dev, q, b, t, h, d);
            var kt = On(dev, k, b, s, hkv, d);
            var vt = On(dev, v, b, s, hkv, d);
            var mt = mask is null ? null : On(dev, mask, b, s);
            var o = Zeros(dev, b, t, h, d);
            var lse = Zeros(dev, b, h, t);
            dev.Backend.Attention(qt, kt, vt, mt, o, lse, scale);
            // Backward from the reference forward's o and lse so both backends see the same saved state.
            outs[slot++] = [qt, kt, vt, o, lse, .. mt is null ? Array.Empty<Tensor>() : [mt]];
        }
        Close(outs[0][3], outs[1][3], 2e-5, 1e-4, "o");
        Close(outs[0][4], outs[1][4], 2e-5, 1e-5, "lse");

        var oRef = outs[0][3].ToFloatArray();
        var lseRef = outs[0][4].ToFloatArray();
        var grads = new Tensor[2][];
        slot = 0;
        foreach (var dev in new[] { ReferenceDevice, NativeDevice })
        {
            using var qt = On(dev, q, b, t, h, d);
            using var kt = On(dev, k, b, s, hkv, d);
            using var vt = On(dev, v, b, s, hkv, d);
            using var mt = mask is null ? null : On(dev, mask, b, s);
            using var o = On(dev, oRef, b, t, h, d);
            using var lse = On(dev, lseRef, b, h, t);
            using var dO = On(dev, dOut, b, t, h, d);
            var dq = Zeros(dev, b, t, h, d);
            var dk = Zeros(dev, b, s, hkv, d);
            var dv = Zeros(dev, b, s, hkv, d);
            dev.Backend.AttentionBackward(qt, kt, vt, mt, o, lse, dO, dq, dk, dv, scale);
            grads[slot++] = [dq, dk, dv];
        }
        Close(grads[0][0], grads[1][0], 5e-5, 2e-4, "dq");
        Close(grads[0][1], grads[1][1], 5e-5, 2e-4, "dk");
        Close(grads[0][2], grads[1][2], 5e-5, 2e-4, "dv");
        foreach (var set in outs.Concat(grads)) foreach (var x in set) x.Dispose();
    }

    /// <summary>BF16 keys and values (a BF16 KV cache) are read in place and widened to fp32: the same outputs as the
    /// reference backend with the same BF16 tensors, for decode (T = 1) and prefill blocks, masked, GQA, and keys and
    /// values that are the filled part of a longer cache (a batch stride past S).</summary>
    [Theory]
    [InlineData(2, 1, 37, 4, 2, 16, true)] [InlineData(1, 1, 5, 2, 1, 8, false)] [InlineData(2, 7, 130, 4, 2, 16, true)]
    [InlineData(1, 100, 100, 2, 2, 8, false)]
    public void Bf16KeysAndValuesMatchTheReference(int b, int t, int s, int h, int hkv, int d, bool masked)
    {
        using var _ = Tensors.Autograd.GradMode.NoGrad();
        var rng = new Rng((ulong)(b + t * 3 + s * 5 + h * 7 + d));
        int capacity = s + 3;
        var q = Random(rng, b * t * h * d, -2, 2);
        var kv = Random(rng, b * capacity * hkv * d, -2, 2);
        var vv = Random(rng, b * capacity * hkv * d);
        float[]? mask = masked ? Enumerable.Range(0, b * s).Select(i => i % 5 == 3 ? 0f : 1f).ToArray() : null;
        var outs = new List<float[]>();
        foreach (var dev in new[] { ReferenceDevice, NativeDevice })
        {
            using var qt = On(dev, q, b, t, h, d);
            using var kFull = On(dev, kv, b, capacity, hkv, d);
            using var vFull = On(dev, vv, b, capacity, hkv, d);
            using var kb = kFull.Cast(DType.BF16);
            using var vb = vFull.Cast(DType.BF16);
            using var k = kb.Narrow(1, 0, s);  // batch stride capacity·Hkv·D
            using var v = vb.Narrow(1, 0, s);
            using var mt = mask is null ? null : On(dev, mask, b, s);
            using var o = Ops.Attention(qt, k, v, mt);
            outs.Add(o.ToFloatArray());
        }
        for (int i = 0; i < outs[0].Length; i++)
            Assert.True(Math.Abs(outs[0][i] - outs[1][i]) <= 2e-5 + 1e-4 * Math.Abs(outs[0][i]), $"o[{i}]: native {outs[1][i]}, reference {outs[0][i]}");
    }
}
