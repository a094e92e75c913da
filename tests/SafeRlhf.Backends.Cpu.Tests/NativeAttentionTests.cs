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

    /// <summary>BF16 keys and values (a BF16 KV cache) have no native kernel: a typed error naming the option, not an
    /// fp32 fallback; the reference backend reads them as stored.</summary>
    [Fact]
    public void Bf16KeysAndValuesAreRefusedNamingTheOption()
    {
        using var _ = Tensors.Autograd.GradMode.NoGrad();
        var rng = new Rng(5);
        foreach (var dev in new[] { NativeDevice, ReferenceDevice })
        {
            using var q = Tensor.FromArray(dev, Random(rng, 16), 1, 1, 2, 8);
            using var k = Tensor.FromArray(dev, Random(rng, 48), 1, 3, 2, 8);
            using var kb = k.Cast(DType.BF16);
            if (ReferenceEquals(dev, NativeDevice))
            {
                var e = Assert.Throws<BackendNotSupportedException>(() => Ops.Attention(q, kb, kb));
                Assert.Contains("BF16 KV cache (--kv-cache bf16", e.Message);
            }
            else
                Assert.Equal(16, Ops.Attention(q, kb, kb).Numel);
        }
    }
}
