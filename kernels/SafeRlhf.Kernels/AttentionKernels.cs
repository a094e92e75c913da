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
    /// <summary>Floats of dynamic shared memory used by the dK/dV kernel.</summary>
    public static int KeyValueGradSharedFloats(int br, int bc, int d) => 4 * bc * d + 2 * br * d + 2 * br * bc + 2 * br;
    /// <summary>Floats of dynamic shared memory used by the dQ kernel.</summary>
    public static int QueryGradSharedFloats(int br, int bc, int d) => 3 * br * d + 2 * bc * d + br * bc + 2 * br;
}

/// <summary>FlashAttention-style causal GQA attention in fp32. The forward keeps a query tile in shared
/// memory, streams K/V tiles through shared memory and maintains an online softmax (running max m and sum
/// l per row, <see cref="OnlineSoftmaxTile"/>), writing o and lse = m + log l; single-token decoding may instead split
/// the keys across blocks (<see cref="DecodePartial"/>, <see cref="DecodeCombine"/>). The backward recomputes probabilities from lse in two passes
/// without atomics: one group per key tile accumulates dK and dV over every query head that shares the KV
/// head; one group per query tile accumulates dQ. Grids are 3-D (tile, head, batch) with 1-D groups.</summary>
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

    /// <summary>dK, dV for one key tile of one KV head, accumulated over all query heads of the group and all
    /// query tiles that can see the keys. Grid: (⌈S/Bc⌉, Hkv, B).</summary>
    [Kernel]
    public static void BackwardKeyValue(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mask,
        ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dOut, ArrayView<float> dk, ArrayView<float> dv,
        AttentionParams p)
    {
        int br = p.Br, bc = p.Bc, d = p.D;
        var sh = SharedMemory.GetDynamic<float>();
        var ks = sh.SubView(0, bc * d);
        var vs = sh.SubView(bc * d, bc * d);
        var dks = sh.SubView(2 * bc * d, bc * d);
        var dvs = sh.SubView(3 * bc * d, bc * d);
        var qs = sh.SubView(4 * bc * d, br * d);
        var dos = sh.SubView(4 * bc * d + br * d, br * d);
        var ps = sh.SubView(4 * bc * d + 2 * br * d, br * bc);
        var ds = sh.SubView(4 * bc * d + 2 * br * d + br * bc, br * bc);
        var lr = sh.SubView(4 * bc * d + 2 * br * d + 2 * br * bc, br);
        var dr = sh.SubView(4 * bc * d + 2 * br * d + 2 * br * bc + br, br);

        int tid = Group.IdxX, threads = Group.DimX;
        int s0 = Grid.IdxX * bc, hk = Grid.IdxY, b = Grid.IdxZ;
        int rep = p.H / p.Hkv;
        int keys = XMath.Min(bc, p.S - s0);

        for (int e = tid; e < bc * d; e += threads)
        {
            int c = e / d;
            long at = c < keys ? p.KRow(b, s0 + c, hk) + e % d : 0;
            ks[e] = c < keys ? k[at] : 0f;
            vs[e] = c < keys ? v[at] : 0f;
            dks[e] = 0f;
            dvs[e] = 0f;
        }
        // the first query that can see key s0 is t = s0 − (S − T)
        int tFirst = XMath.Max(0, s0 - (p.S - p.T));
        int tStart = tFirst / br * br;
        for (int j = 0; j < rep; j++)
        {
            int h = hk * rep + j;
            for (int t0 = tStart; t0 < p.T; t0 += br)
            {
                int rows = XMath.Min(br, p.T - t0);
                Group.Barrier();
                for (int e = tid; e < br * d; e += threads)
                {
                    int r = e / d;
                    long at = r < rows ? p.QRow(b, t0 + r, h) + e % d : 0;
                    qs[e] = r < rows ? q[at] : 0f;
                    dos[e] = r < rows ? dOut[at] : 0f;
                }
                for (int r = tid; r < br; r += threads)
                {
                    lr[r] = r < rows ? lse[p.LseAt(b, h, t0 + r)] : float.NegativeInfinity;
                    dr[r] = r < rows ? delta[p.LseAt(b, h, t0 + r)] : 0f;
                }
                Group.Barrier();
                for (int e = tid; e < br * bc; e += threads)
                {
                    int r = e / bc, c = e % bc;
                    float pr = 0f, dsv = 0f;
                    if (r < rows && lr[r] != float.NegativeInfinity && p.Visible(mask, b, t0 + r, s0 + c))
                    {
                        float dot = 0f, dp = 0f;
                        for (int i = 0; i < d; i++)
                        {
                            dot += qs[r * d + i] * ks[c * d + i];
                            dp += dos[r * d + i] * vs[c * d + i];
                        }
                        pr = XMath.Exp(dot * p.Scale - lr[r]);
                        dsv = pr * (dp - dr[r]) * p.Scale;
                    }
                    ps[e] = pr;
                    ds[e] = dsv;
                }
                Group.Barrier();
                for (int e = tid; e < bc * d; e += threads)
                {
                    int c = e / d, i = e % d;
                    float accV = dvs[e], accK = dks[e];
                    for (int r = 0; r < br; r++)
                    {
                        accV += ps[r * bc + c] * dos[r * d + i];
                        accK += ds[r * bc + c] * qs[r * d + i];
                    }
                    dvs[e] = accV;
                    dks[e] = accK;
                }
            }
        }
        Group.Barrier();
        for (int e = tid; e < keys * d; e += threads)
        {
            long at = p.KRow(b, s0 + e / d, hk) + e % d;
            dk[at] = dks[e];
            dv[at] = dvs[e];
        }
    }

    /// <summary>dQ for one query tile of one head: dQ = Σ over key tiles of dS·K. Grid: (⌈T/Br⌉, H, B).</summary>
    [Kernel]
    public static void BackwardQuery(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mask,
        ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dOut, ArrayView<float> dq, AttentionParams p)
    {
        int br = p.Br, bc = p.Bc, d = p.D;
        var sh = SharedMemory.GetDynamic<float>();
        var qs = sh.SubView(0, br * d);
        var dos = sh.SubView(br * d, br * d);
        var dqs = sh.SubView(2 * br * d, br * d);
        var ks = sh.SubView(3 * br * d, bc * d);
        var vs = sh.SubView(3 * br * d + bc * d, bc * d);
        var ds = sh.SubView(3 * br * d + 2 * bc * d, br * bc);
        var lr = sh.SubView(3 * br * d + 2 * bc * d + br * bc, br);
        var dr = sh.SubView(3 * br * d + 2 * bc * d + br * bc + br, br);

        int tid = Group.IdxX, threads = Group.DimX;
        int t0 = Grid.IdxX * br, h = Grid.IdxY, b = Grid.IdxZ;
        int hk = h / (p.H / p.Hkv);
        int rows = XMath.Min(br, p.T - t0);

        for (int e = tid; e < br * d; e += threads)
        {
            int r = e / d;
            long at = r < rows ? p.QRow(b, t0 + r, h) + e % d : 0;
            qs[e] = r < rows ? q[at] : 0f;
            dos[e] = r < rows ? dOut[at] : 0f;
            dqs[e] = 0f;
        }
        for (int r = tid; r < br; r += threads)
        {
            lr[r] = r < rows ? lse[p.LseAt(b, h, t0 + r)] : float.NegativeInfinity;
            dr[r] = r < rows ? delta[p.LseAt(b, h, t0 + r)] : 0f;
        }
        int kvEnd = XMath.Min(p.S, p.S - p.T + t0 + rows);
        for (int s0 = 0; s0 < kvEnd; s0 += bc)
        {
            Group.Barrier();
            LoadKeyValueTile(k, v, ks, vs, p, b, hk, s0);
            Group.Barrier();
            for (int e = tid; e < br * bc; e += threads)
            {
                int r = e / bc, c = e % bc;
                float dsv = 0f;
                if (r < rows && lr[r] != float.NegativeInfinity && p.Visible(mask, b, t0 + r, s0 + c))
                {
                    float dot = 0f, dp = 0f;
                    for (int i = 0; i < d; i++)
                    {
                        dot += qs[r * d + i] * ks[c * d + i];
                        dp += dos[r * d + i] * vs[c * d + i];
                    }
                    float pr = XMath.Exp(dot * p.Scale - lr[r]);
                    dsv = pr * (dp - dr[r]) * p.Scale;
                }
                ds[e] = dsv;
            }
            Group.Barrier();
            for (int e = tid; e < br * d; e += threads)
            {
                int r = e / d, i = e % d;
                float acc = dqs[e];
                for (int c = 0; c < bc; c++) acc += ds[r * bc + c] * ks[c * d + i];
                dqs[e] = acc;
            }
        }
        Group.Barrier();
        for (int e = tid; e < rows * d; e += threads)
            dq[p.QRow(b, t0 + e / d, h) + e % d] = dqs[e];
    }

    /// <summary>Keys and values s0 .. s0 + Bc of KV head hk into the shared tiles ks, vs [Bc, D] (zeros past the end), the
    /// group's threads sharing the elements.</summary>
    private static void LoadKeyValueTile(ArrayView<float> k, ArrayView<float> v, ArrayView<float> ks, ArrayView<float> vs,
        AttentionParams p, int b, int hk, int s0)
    {
        int d = p.D;
        for (int e = Group.IdxX; e < p.Bc * d; e += Group.DimX)
        {
            int s = s0 + e / d;
            bool inside = s < p.S;
            long at = inside ? p.KRow(b, s, hk) + e % d : 0;
            ks[e] = inside ? k[at] : 0f;
            vs[e] = inside ? v[at] : 0f;
        }
    }
}
