using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>The attention backward in one pass over the scores, as FlashAttention-2 does: one group per (key tile of Bc
/// keys, KV head, batch) keeps its K and V rows and its dK and dV accumulators in shared memory and visits every query
/// tile (of every query head sharing the KV head) that can see its keys. For each it forms the scores S = Q·Kᵀ and
/// dP = dO·Vᵀ once, recomputes P = exp(scale·S − lse) from the forward's log-sum-exp, dS = P∘(dP − Δ)·scale, adds
/// Pᵀ·dO to dV and dSᵀ·Q to dK, and adds its share dS·K of dQ to the global dQ with fp32 atomics (dQ is cleared first):
/// QKᵀ is recomputed once in the backward instead of twice, and no second kernel revisits the keys. All tiles are stored
/// with a padded row stride of D + 1 floats, so the lanes of a warp, which take consecutive keys (scores) or consecutive
/// head dimensions (the three products), hit distinct shared-memory banks; the P, dS, Q-row and K-row values they share
/// are broadcasts. Layout (floats): K, V, dK, dV Bc·(D+1) each | Q, dO Br·(D+1) each | P, dS Br·Bc each | lse, Δ Br
/// each (<see cref="AttentionParams.BackwardSharedFloats"/>). The order in which key tiles add into dQ is not fixed, so
/// dQ's last bits may differ between runs (as for ScatterAdd).</summary>
public static partial class AttentionKernels
{
    /// <summary>dK, dV of one key tile and its atomic share of dQ. Grid: (⌈S/Bc⌉, Hkv, B).</summary>
    [Kernel]
    public static void Backward(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> mask,
        ArrayView<float> lse, ArrayView<float> delta, ArrayView<float> dOut, ArrayView<float> dq, ArrayView<float> dk,
        ArrayView<float> dv, AttentionParams p)
    {
        var t = new AttentionBackwardTile(SharedMemory.GetDynamic<float>(), p.Br, p.Bc, p.D);
        int s0 = Grid.IdxX * p.Bc, hk = Grid.IdxY, b = Grid.IdxZ;
        int rep = p.H / p.Hkv;
        t.LoadKeys(k, v, p, b, hk, s0);
        // the first query that can see key s0 is s0 − (S − T)
        int tStart = XMath.Max(0, s0 - (p.S - p.T)) / p.Br * p.Br;
        for (int j = 0; j < rep; j++)
        {
            int h = hk * rep + j;
            for (int t0 = tStart; t0 < p.T; t0 += p.Br)
            {
                int rows = XMath.Min(p.Br, p.T - t0);
                t.LoadQueries(q, dOut, lse, delta, p, b, h, t0, rows);
                t.Scores(mask, p, b, t0, rows, s0);
                t.Accumulate(dq, p, b, h, t0, rows);
            }
        }
        t.Store(dk, dv, p, b, hk, s0);
    }
}
