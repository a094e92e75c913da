using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>Causal attention with GQA, forward and backward, written once and run on every backend against
/// <see cref="AttentionOracle"/>: an empty query block, S &gt; T (decoding after a KV-cache offset), key padding masks
/// (a fully masked query, a fully padded batch row), an odd head size, single-token decoding over many keys (the split-KV
/// path of the ILGPU backends), and keys and values read in place from the filled part of a larger cache (forward; the backward of a cache view is an explicit error on native).</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class AttentionConformanceTests
{
    /// <summary>(B, T, S, H, Hkv, D, masked, cache length or 0 for packed keys and values).</summary>
    private static readonly (int B, int T, int S, int H, int Hkv, int D, bool Masked, int Cache)[] Cases =
    [
        (1, 1, 1, 1, 1, 4, false, 0),
        (1, 0, 3, 2, 1, 4, false, 0),
        (2, 5, 5, 4, 2, 8, false, 0),
        (2, 7, 7, 6, 2, 12, true, 0),
        (2, 5, 11, 6, 2, 8, true, 0),
        (1, 7, 9, 2, 1, 5, false, 0),
        (2, 3, 7, 4, 2, 8, false, 12),
        // one query token against many keys: the ILGPU backends split the keys into ranges of 8 (CPU accelerator)
        (1, 1, 13, 4, 2, 8, false, 0),                                      // 13 = 8 + 5 keys, GQA 2 heads per KV head
        (2, 1, 19, 6, 2, 12, true, 24),                                     // masked, in a cache, a fully padded batch row
        (2, 1, 17, 8, 1, 5, true, 0),                                       // 8 query heads per KV head: two row groups of 4
        // several native blocks (96 queries, 128 keys): the one-pass backward (B·Hkv ≥ threads) and the two-pass one
        (2, 130, 133, 4, 2, 4, true, 0),
        (1, 130, 130, 2, 1, 8, false, 0),
    ];

    private static double[]? Mask(int b, int s, bool masked)
    {
        if (!masked) return null;
        var mask = Enumerable.Range(0, b * s).Select(i => i % 3 == 1 ? 0.0 : 1.0).ToArray();
        mask[0] = 0;                                                        // query 0 of a T = S block sees no key
        if (b > 1) Array.Fill(mask, 0.0, s, s);                              // the second batch row is all padding
        return mask;
    }

    /// <summary>k or v [B, S, Hkv, D]: packed, or the first S positions of a [B, cache, Hkv, D] buffer (batch-strided).</summary>
    private static Tensor KeyValues(Device d, double[] values, int b, int s, int hkv, int hd, int cache)
    {
        if (cache == 0) return Make(d, values, b, s, hkv, hd);
        var full = new double[b * cache * hkv * hd];
        for (int i = 0; i < b; i++) Array.Copy(values, i * s * hkv * hd, full, i * cache * hkv * hd, s * hkv * hd);
        return Make(d, full, b, cache, hkv, hd).Narrow(1, 0, s);
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void AttentionAndItsBackward(string backend)
    {
        var d = Device(backend);
        foreach (var (b, t, s, h, hkv, hd, masked, cache) in Cases)
        {
            using var scope = new TensorScope();
            string what = $"attention B{b} T{t} S{s} H{h}/{hkv} D{hd}{(masked ? " masked" : "")}{(cache > 0 ? " in cache" : "")}";
            var q = Values32(40, b * t * h * hd);
            var k = Values32(41, b * s * hkv * hd);
            var v = Values32(42, b * s * hkv * hd);
            var mask = Mask(b, s, masked);
            var oracle = new AttentionOracle(b, t, s, h, hkv, hd, mask, 1 / Math.Sqrt(hd));
            var maskT = mask is null ? null : Make(d, mask, b, s);
            var o = Tensor.Zeros(d, DType.F32, b, t, h, hd);
            var lse = Tensor.Zeros(d, DType.F32, b, h, t);
            var (kt, vt) = (KeyValues(d, k, b, s, hkv, hd, cache), KeyValues(d, v, b, s, hkv, hd, cache));
            d.Backend.Attention(Make(d, q, b, t, h, hd), kt, vt, maskT, o, lse, oracle.Scale);
            var (eo, expectedLse) = oracle.Forward(q, k, v);
            AssertClose(eo, o, $"{what} o", 1e-5, 1e-4);
            AssertClose(expectedLse, lse, $"{what} lse", 1e-5, 1e-5);

            var (os, ls) = (F32(eo), F32(expectedLse));
            var dOut = Values32(43, b * t * h * hd);
            var dq = Tensor.Zeros(d, DType.F32, b, t, h, hd);
            var dk = Tensor.Zeros(d, DType.F32, b, s, hkv, hd);
            var dv = Tensor.Zeros(d, DType.F32, b, s, hkv, hd);
            void Backward() => d.Backend.AttentionBackward(Make(d, q, b, t, h, hd), kt, vt, maskT, Make(d, os, b, t, h, hd),
                Make(d, ls, b, h, t), Make(d, dOut, b, t, h, hd), dq, dk, dv, oracle.Scale);
            if (cache > 0 && backend == "native")
            {
                // training never differentiates through a cache: native's backward takes packed keys and values only
                Assert.Contains("strided", Assert.Throws<BackendNotSupportedException>(Backward).Message);
                continue;
            }
            Backward();
            var (edq, edk, edv) = oracle.Backward(q, k, v, os, ls, dOut);
            AssertClose(edq, dq, $"{what} dq", 1e-4, 1e-4);
            AssertClose(edk, dk, $"{what} dk", 1e-4, 1e-4);
            AssertClose(edv, dv, $"{what} dv", 1e-4, 1e-4);
        }
    }
}
