using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>A BF16 KV cache on the GPU backend: keys and values rounded to nearest even when written into the cache, read
/// as BF16 by the forward and split-KV decode kernels (one and two launches: no staging copy), widened to fp32 and
/// accumulated in fp32. Against the reference backend with the same BF16 cache (identical inputs: fp32 tolerance), and
/// against the reference with fp32 keys and values under <see cref="Bf16Rounding.AttentionOutputBound"/> (the bound
/// derived from BF16's 2⁻⁸ rounding).</summary>
public sealed class Bf16KvCacheTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void WritingIntoTheCacheRoundsToNearestEven()
    {
        // ties: 1 + 2⁻⁸ lies halfway between 1 (even) and 1 + 2⁻⁷ (odd) → 1; 1 + 3·2⁻⁸ halfway between 1 + 2⁻⁷ (odd)
        // and 1 + 2⁻⁶ (even) → 1 + 2⁻⁶; just above a tie rounds up; −0 keeps its sign; the largest fp32 value lies past
        // the last BF16 step's midpoint and rounds to +∞
        float[] ties = [1f + 1f / 256, 1f + 3f / 256, 1f + 1f / 256 + 1f / 65536, -(1f + 1f / 256), -0f, float.MaxValue];
        ushort[] expected = [0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x8000, 0x7F80];
        var values = ties.Concat(Random(3, 2 * 8 - ties.Length)).ToArray();
        var config = new LlamaConfig { Dim = 8, HiddenDim = 8, NLayers = 1, NHeads = 2, NKvHeads = 2, VocabSize = 8, SeqLen = 4 };
        using var cache = new KvCache(Gpu, config, 1, 2, DType.BF16);
        using var k = Tensor.FromArray(Gpu, values, 1, 2, 2, 4);
        var (keys, cachedValues) = cache.Append(0, k, k);
        using (keys) using (cachedValues)
        {
            Assert.Equal(DType.BF16, keys.DType);
            var bits = Bits(keys);
            for (int i = 0; i < ties.Length; i++) Assert.True(expected[i] == bits[i], $"{ties[i]:R}: 0x{bits[i]:X4}, expected 0x{expected[i]:X4}");
            // every other element as the reference backend rounds it (its own host conversion)
            using var onRef = Tensor.FromArray(Ref, values, 1, 2, 2, 4).Cast(DType.BF16);
            Assert.Equal(Bits(onRef), bits);
        }
    }

    private static ushort[] Bits(Tensor t)
    {
        using var c = t.Contiguous();
        var bytes = c.ToBytes();
        return Enumerable.Range(0, bytes.Length / 2).Select(i => (ushort)(bytes[2 * i] | bytes[2 * i + 1] << 8)).ToArray();
    }

    [Theory]
    [InlineData(2, 5, 7, 4, 2, 8, true, 1)]    // prefill-like: several query and key tiles, masked
    [InlineData(1, 1, 21, 6, 3, 12, false, 2)] // decode: split-KV ranges 8 + 8 + 5
    [InlineData(2, 1, 16, 8, 1, 5, true, 2)]   // decode: GQA 8 heads on one KV head, masked
    [InlineData(1, 1, 6, 2, 2, 4, false, 1)]   // decode with one range: the forward kernel
    public void Bf16KeysAndValuesMatchTheReference(int b, int t, int s, int h, int hkv, int d, bool masked, int launches)
    {
        var q = Random(80 + s, b * t * h * d, 2f);
        var kf = Random(81 + s, b * s * hkv * d, 2f);
        var vf = Random(82 + s, b * s * hkv * d);
        var mask = masked ? Enumerable.Range(0, b * s).Select(i => i % 5 == 3 ? 0f : 1f).ToArray() : null;
        double scale = 1 / Math.Sqrt(d);
        using var _ = GradMode.NoGrad();

        var (go, glse, activity) = Attend(Gpu, q, kf, vf, mask, b, t, s, h, hkv, d, scale, DType.BF16);
        var (ro, rlse, _) = Attend(Ref, q, kf, vf, mask, b, t, s, h, hkv, d, scale, DType.BF16);
        var (fo, flse, _) = Attend(Ref, q, kf, vf, mask, b, t, s, h, hkv, d, scale, DType.F32);
        Assert.Equal(launches, activity.Launches);   // the BF16 cache is read in place, not staged as fp32
        AssertClose(go, ro, 1e-5, 1e-4, "o vs reference with the same BF16 cache");
        AssertClose(glse, rlse, 1e-5, 1e-5, "lse vs reference with the same BF16 cache");

        // against fp32 keys and values: the bound of BF16 rounding, per output element, plus fp32 slack
        var kb = Bf16(kf);
        var vb = Bf16(vf);
        int rep = h / hkv;
        double worstShare = 0;
        for (int bi = 0; bi < b; bi++)
            for (int ti = 0; ti < t; ti++)
                for (int hi = 0; hi < h; hi++)
                {
                    int hk = hi / rep;
                    double e = 0;
                    var maxV = new double[d];
                    bool any = false;
                    for (int si = 0; si <= s - t + ti; si++)
                    {
                        if (mask is not null && mask[bi * s + si] == 0) continue;
                        any = true;
                        double absDot = 0;
                        for (int i = 0; i < d; i++)
                        {
                            long kAt = ((long)(bi * s + si) * hkv + hk) * d + i;
                            absDot += Math.Abs(q[((bi * t + ti) * h + hi) * d + i]) * Math.Abs(kf[kAt]);
                            maxV[i] = Math.Max(maxV[i], Math.Abs(vf[kAt]));
                            Assert.True(Math.Abs(kb[kAt] - kf[kAt]) <= Bf16Rounding.UnitRoundoff * Math.Abs(kf[kAt]), "key rounding within 2⁻⁸");
                            Assert.True(Math.Abs(vb[kAt] - vf[kAt]) <= Bf16Rounding.UnitRoundoff * Math.Abs(vf[kAt]), "value rounding within 2⁻⁸");
                        }
                        e = Math.Max(e, scale * absDot * Bf16Rounding.UnitRoundoff);
                    }
                    if (!any) continue;
                    long row = ((long)(bi * t + ti) * h + hi) * d;
                    for (int i = 0; i < d; i++)
                    {
                        double bound = Bf16Rounding.AttentionOutputBound(e, maxV[i]);
                        double err = Math.Abs(go[row + i] - fo[row + i]);
                        Assert.True(err <= bound + 1e-5, $"o[{row + i}]: |Δ| {err:g3} over the BF16 bound {bound:g3}");
                        worstShare = Math.Max(worstShare, err / bound);
                    }
                    double lseErr = Math.Abs(glse[(bi * h + hi) * t + ti] - flse[(bi * h + hi) * t + ti]);
                    Assert.True(lseErr <= e + 1e-5, $"lse: |Δ| {lseErr:g3} over the score bound {e:g3}");
                }
        Assert.True(worstShare > 1e-3, $"the BF16 cache changed the output by at most {worstShare:g3} of the bound: was it rounded at all?");
    }

    /// <summary>K and V stored as exactly representable BF16 values: the fp32 kernels and the BF16 kernels do the same
    /// arithmetic after the exact widening, so their outputs are bit-identical (the f32 path is unchanged by the BF16 one).</summary>
    [Theory]
    [InlineData(2, 5, 7, 4, 2, 8)]
    [InlineData(1, 1, 21, 6, 3, 12)]
    public void F32AndBf16KernelsAgreeBitwiseOnBf16Values(int b, int t, int s, int h, int hkv, int d)
    {
        var q = Random(90 + s, b * t * h * d);
        var k = Bf16(Random(91 + s, b * s * hkv * d)).Select(x => (float)x).ToArray();
        var v = Bf16(Random(92 + s, b * s * hkv * d)).Select(x => (float)x).ToArray();
        using var _ = GradMode.NoGrad();
        var (o32, lse32, _) = Attend(Gpu, q, k, v, null, b, t, s, h, hkv, d, 0.5, DType.F32);
        var (o16, lse16, _) = Attend(Gpu, q, k, v, null, b, t, s, h, hkv, d, 0.5, DType.BF16);
        Assert.Equal(o32, o16);
        Assert.Equal(lse32, lse16);
    }

    /// <summary>A whole model decoding through a BF16 cache (prefill, then one token per step through the decode
    /// kernels): the same greedy tokens as the reference backend with a BF16 cache.</summary>
    [Fact]
    public void GreedyDecodingThroughABf16CacheMatchesTheReference()
    {
        var config = new LlamaConfig { Dim = 32, HiddenDim = 48, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 40, SeqLen = 32 };
        List<int> Run(Device d)
        {
            using var scope = new TensorScope();
            using var model = LlamaModel.Create(config, d, new Rng(7));
            model.KvCacheStorage = KvCacheType.BF16;
            return Generator.Generate(model, [1, 2, 3], 12, new SamplingOptions { Temperature = 0 });
        }
        Assert.Equal(Run(Ref), Run(Gpu));
    }

    [Fact]
    public void GradientsThroughABf16CacheAreRefused()
    {
        using var q = Tensor.FromArray(Gpu, Random(1, 16), 1, 1, 2, 8);
        using var k = Tensor.FromArray(Gpu, Random(2, 16), 1, 1, 2, 8);
        using var kb = k.Cast(DType.BF16);
        q.RequiresGrad = true;
        var e = Assert.Throws<TensorDTypeException>(() => Ops.Attention(q, kb, kb));
        Assert.Contains("inference only", e.Message);
    }

    private static double[] Bf16(float[] values)
    {
        using var t = Tensor.FromArray(new Device(new Cpu.Reference.ReferenceBackend()), values, values.Length);
        using var r = t.Cast(DType.BF16);
        return r.ToArray<double>();
    }

    /// <summary>o and lse of attention with k, v stored as <paramref name="kv"/> (rounded by the device's Copy), and the
    /// launches of the attention call alone.</summary>
    private static (double[] O, double[] Lse, DeviceActivity Activity) Attend(Device device, float[] q, float[] k, float[] v, float[]? mask,
        int b, int t, int s, int h, int hkv, int d, double scale, DType kv)
    {
        using var qt = Tensor.FromArray(device, q, b, t, h, d);
        using var kf = Tensor.FromArray(device, k, b, s, hkv, d);
        using var vf = Tensor.FromArray(device, v, b, s, hkv, d);
        using var kc = kv == DType.F32 ? null : kf.Cast(kv);
        using var vc = kv == DType.F32 ? null : vf.Cast(kv);
        var kt = kc ?? kf;
        var vt = vc ?? vf;
        using var mt = mask is null ? null : Tensor.FromArray(device, mask, b, s);
        using var o = Tensor.Zeros(device, DType.F32, b, t, h, d);
        using var lse = Tensor.Zeros(device, DType.F32, b, h, t);
        var profiled = new ProfilingBackend(device.Backend);
        var activity = profiled.Measure(() => profiled.Attention(qt, kt, vt, mt, o, lse, scale));
        return (o.ToArray<double>(), lse.ToArray<double>(), activity);
    }
}
