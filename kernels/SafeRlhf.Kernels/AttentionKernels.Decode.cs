using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>Split-KV attention for one query token (T = 1, decoding against a KV cache). The keys are cut into
/// <see cref="AttentionParams.Splits"/> ranges of <see cref="AttentionParams.SplitKeys"/>; one group per (range,
/// KV head × row group, batch) runs the forward's online softmax (<see cref="OnlineSoftmaxTile"/>) over its range for the
/// query heads that share the KV head (so K and V are read once for the whole GQA group) and writes a partial
/// output o_j (normalised by its own sum) and lse_j. <see cref="DecodeCombine"/> merges the ranges with the log-sum-exp
/// rule: lse = log Σ_j exp(lse_j), o = Σ_j exp(lse_j − lse)·o_j. Partials: oPart [B, H, splits, D],
/// lsePart [B, H, splits].</summary>
public static partial class AttentionKernels
{
    /// <summary>Grid: (splits, Hkv·⌈rep/Br⌉, B) with rep = H/Hkv; row r of group g is query head hk·rep + g·Br + r.</summary>
    [Kernel]
    public static void DecodePartial(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mask,
        ArrayView<float> oPart, ArrayView<float> lsePart, AttentionParams p) =>
        DecodeRange(q, new F32KeyValues(k, v), mask, oPart, lsePart, p);

    /// <summary><see cref="DecodePartial"/> with BF16 keys and values (a BF16 KV cache), widened to fp32 as they are loaded.</summary>
    [Kernel]
    public static void DecodePartialBf16Kv(ArrayView<float> q, ArrayView<ushort> k, ArrayView<ushort> v, ArrayView<float> mask,
        ArrayView<float> oPart, ArrayView<float> lsePart, AttentionParams p) =>
        DecodeRange(q, new Bf16KeyValues(k, v), mask, oPart, lsePart, p);

    private static void DecodeRange<TKv>(ArrayView<float> q, TKv kv, ArrayView<float> mask, ArrayView<float> oPart,
        ArrayView<float> lsePart, AttentionParams p) where TKv : struct, IKeyValueRows
    {
        var tile = new OnlineSoftmaxTile(SharedMemory.GetDynamic<float>(), p.Br, p.Bc, p.D);
        int rep = p.H / p.Hkv, rowGroups = (rep + p.Br - 1) / p.Br;
        int split = Grid.IdxX, hk = Grid.IdxY / rowGroups, g = Grid.IdxY % rowGroups, b = Grid.IdxZ;
        int h0 = hk * rep + g * p.Br;
        int rows = XMath.Min(p.Br, rep - g * p.Br);
        int splits = p.Splits;
        int kvFrom = split * p.SplitKeys, kvTo = XMath.Min(p.S, kvFrom + p.SplitKeys);
        // T = 1: the query heads of one token are adjacent rows of D floats
        tile.Start(q, p.QRow(b, 0, h0), p.D, rows);
        tile.Accumulate(kv, mask, p, b, hk, 0, 0, rows, kvFrom, kvTo);
        long rowBase = (long)b * p.H + h0;
        for (int e = Group.IdxX; e < rows * p.D; e += Group.DimX)
        {
            int r = e / p.D, i = e % p.D;
            oPart[((rowBase + r) * splits + split) * p.D + i] = tile.Output(r, i);
        }
        for (int r = Group.IdxX; r < rows; r += Group.DimX)
            lsePart[(rowBase + r) * splits + split] = tile.LogSumExp(r);
    }

    /// <summary>o[b, 0, h, i] and lse[b, h, 0] from the partials, one thread per output element (grid-stride over
    /// B·H·D); a row whose ranges all saw no key gets o = 0 and lse = −∞, as in the forward.</summary>
    [Kernel]
    public static void DecodeCombine(ArrayView<float> oPart, ArrayView<float> lsePart, ArrayView<float> o, ArrayView<float> lse,
        AttentionParams p)
    {
        int splits = p.Splits;
        long total = (long)p.B * p.H * p.D;
        for (long e = DeviceMath.GlobalIndex; e < total; e += DeviceMath.GridStride)
        {
            long row = e / p.D;
            int i = (int)(e % p.D);
            float m = float.NegativeInfinity;
            for (int j = 0; j < splits; j++) m = XMath.Max(m, lsePart[row * splits + j]);
            if (m == float.NegativeInfinity)
            {
                o[e] = 0f;
                if (i == 0) lse[row] = float.NegativeInfinity;
                continue;
            }
            float sum = 0f, acc = 0f;
            for (int j = 0; j < splits; j++)
            {
                float lj = lsePart[row * splits + j];
                float w = lj == float.NegativeInfinity ? 0f : XMath.Exp(lj - m);
                sum += w;
                acc += w * oPart[(row * splits + j) * p.D + i];
            }
            o[e] = acc / sum;
            if (i == 0) lse[row] = m + XMath.Log(sum);
        }
    }
}
