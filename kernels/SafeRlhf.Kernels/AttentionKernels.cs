using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>Attention shapes: q, o, dq [B, T, H, D]; k, v, dk, dv [B, S, Hkv, D]; lse, delta [B, H, T];
/// mask [B, S] (fp32, 0 = padding) when HasMask. Query t sits at key position S − T + t (causal, aligned at
/// the end). Br/Bc: query/key tile sizes. SplitKeys: keys per block of the split-KV decode (0 when not split).</summary>
public readonly struct AttentionParams
{
    public readonly int B, T, S, H, Hkv, D, Br, Bc, HasMask, SplitKeys;
    public readonly float Scale;
    /// <summary>Element distance between batch entries of k and v (a KV cache's capacity rows; S·Hkv·D when packed).</summary>
    public readonly long KvBatchStride;

    public AttentionParams(int b, int t, int s, int h, int hkv, int d, int br, int bc, bool hasMask, float scale, long kvBatchStride = 0,
        int splitKeys = 0)
    {
        B = b; T = t; S = s; H = h; Hkv = hkv; D = d; Br = br; Bc = bc; HasMask = hasMask ? 1 : 0; Scale = scale;
        KvBatchStride = kvBatchStride != 0 ? kvBatchStride : (long)s * hkv * d;
        SplitKeys = splitKeys;
    }

    public long QRow(int b, int t, int h) => (((long)b * T + t) * H + h) * D;
    public long KRow(int b, int s, int hk) => b * KvBatchStride + ((long)s * Hkv + hk) * D;
    public long LseAt(int b, int h, int t) => ((long)b * H + h) * T + t;

    /// <summary>Blocks the keys are split into by the decode path (⌈S / SplitKeys⌉).</summary>
    public int Splits => SplitKeys == 0 ? 1 : (S + SplitKeys - 1) / SplitKeys;

    /// <summary>Causal and padding visibility of key <paramref name="s"/> for query <paramref name="t"/>.</summary>
    public bool Visible(ArrayView<float> mask, int b, int t, int s) =>
        t < T && s < S && s <= S - T + t && (HasMask == 0 || mask[(long)b * S + s] != 0f);

    /// <summary>Floats of dynamic shared memory used by the forward and decode kernels: Q, O, K and V tiles with a
    /// padded row stride of D + 1 floats (no bank conflicts), the score tile and three per-row values.</summary>
    public static int ForwardSharedFloats(int br, int bc, int d) => 2 * br * (d + 1) + 2 * bc * (d + 1) + br * bc + 3 * br;
    /// <summary>Floats of dynamic shared memory used by the backward kernel (<see cref="AttentionBackwardTile"/>): K, V, dK, dV and
    /// Q, dO tiles with a padded row stride of D + 1 floats, the P and dS tiles and two per-row values.</summary>
    public static int BackwardSharedFloats(int br, int bc, int d) => 4 * bc * (d + 1) + 2 * br * (d + 1) + 2 * br * bc + 2 * br;
}

/// <summary>FlashAttention-style causal GQA attention in fp32. The forward keeps a query tile in shared
/// memory, streams K/V tiles through shared memory and maintains an online softmax (running max m and sum
/// l per row, <see cref="OnlineSoftmaxTile"/>), writing o and lse = m + log l; single-token decoding may instead split
/// the keys across blocks (<see cref="DecodePartial"/>, <see cref="DecodeCombine"/>). The backward (<see cref="Backward"/>)
/// recomputes probabilities from lse once, FlashAttention-2-style: one group per key tile accumulates dK and dV over every
/// query head that shares the KV head and adds its share of dQ with atomics. Grids are 3-D (tile, head, batch) with 1-D
/// groups.</summary>
public static partial class AttentionKernels
{
    /// <summary>One group per (query tile of Br rows, head, batch); see <see cref="OnlineSoftmaxTile"/>.</summary>
    [Kernel]
    public static void Forward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mask,
        ArrayView<float> o, ArrayView<float> lse, AttentionParams p) =>
        ForwardTile(q, new F32KeyValues(k, v), mask, o, lse, p);

    /// <summary><see cref="Forward"/> with BF16 keys and values (a BF16 KV cache), widened to fp32 as they are loaded.</summary>
    [Kernel]
    public static void ForwardBf16Kv(ArrayView<float> q, ArrayView<ushort> k, ArrayView<ushort> v, ArrayView<float> mask,
        ArrayView<float> o, ArrayView<float> lse, AttentionParams p) =>
        ForwardTile(q, new Bf16KeyValues(k, v), mask, o, lse, p);

    private static void ForwardTile<TKv>(ArrayView<float> q, TKv kv, ArrayView<float> mask, ArrayView<float> o, ArrayView<float> lse,
        AttentionParams p) where TKv : struct, IKeyValueRows
    {
        var tile = new OnlineSoftmaxTile(SharedMemory.GetDynamic<float>(), p.Br, p.Bc, p.D);
        int t0 = Grid.IdxX * p.Br, h = Grid.IdxY, b = Grid.IdxZ;
        int hk = h / (p.H / p.Hkv);
        int rows = XMath.Min(p.Br, p.T - t0);
        long qStride = (long)p.H * p.D;
        tile.Start(q, p.QRow(b, t0, h), qStride, rows);
        // keys past the causal frontier of the tile's last query are never visible
        tile.Accumulate(kv, mask, p, b, hk, t0, 1, rows, 0, XMath.Min(p.S, p.S - p.T + t0 + rows));
        for (int e = Group.IdxX; e < rows * p.D; e += Group.DimX)
        {
            int r = e / p.D, i = e % p.D;
            o[p.QRow(b, t0 + r, h) + i] = tile.Output(r, i);
        }
        for (int r = Group.IdxX; r < rows; r += Group.DimX)
            lse[p.LseAt(b, h, t0 + r)] = tile.LogSumExp(r);
    }

    /// <summary>delta[b, h, t] = Σ_i dO·O over the head dimension (one thread per row).</summary>
    [Kernel]
    public static void BackwardDelta(ArrayView<float> o, ArrayView<float> dOut, ArrayView<float> delta, AttentionParams p)
    {
        long rowsTotal = (long)p.B * p.T * p.H;
        for (long e = DeviceMath.GlobalIndex; e < rowsTotal; e += DeviceMath.GridStride)
        {
            int h = (int)(e % p.H);
            long bt = e / p.H;
            int t = (int)(bt % p.T), b = (int)(bt / p.T);
            long row = e * p.D;
            float acc = 0f;
            for (int i = 0; i < p.D; i++) acc += dOut[row + i] * o[row + i];
            delta[p.LseAt(b, h, t)] = acc;
        }
    }
}
