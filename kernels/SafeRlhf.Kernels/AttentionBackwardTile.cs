using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>The shared-memory tiles of <see cref="AttentionKernels.Backward"/> and its phases; every thread of the group
/// must call each method.</summary>
public readonly struct AttentionBackwardTile
{
    private readonly ArrayView<float> _ks, _vs, _dks, _dvs, _qs, _dos, _ps, _ds, _lse, _delta;
    private readonly int _br, _bc, _d, _ld;

    public AttentionBackwardTile(ArrayView<float> shared, int br, int bc, int d)
    {
        _br = br; _bc = bc; _d = d; _ld = d + 1;
        long at = 0;
        _ks = shared.SubView(at, bc * _ld); at += bc * _ld;
        _vs = shared.SubView(at, bc * _ld); at += bc * _ld;
        _dks = shared.SubView(at, bc * _ld); at += bc * _ld;
        _dvs = shared.SubView(at, bc * _ld); at += bc * _ld;
        _qs = shared.SubView(at, br * _ld); at += br * _ld;
        _dos = shared.SubView(at, br * _ld); at += br * _ld;
        _ps = shared.SubView(at, br * bc); at += br * bc;
        _ds = shared.SubView(at, br * bc); at += br * bc;
        _lse = shared.SubView(at, br); at += br;
        _delta = shared.SubView(at, br);
    }

    /// <summary>K and V rows s0 .. s0 + Bc of KV head hk (zeros past S); dK = dV = 0.</summary>
    public void LoadKeys(ArrayView<float> k, ArrayView<float> v, AttentionParams p, int b, int hk, int s0)
    {
        for (int e = Group.IdxX; e < _bc * _d; e += Group.DimX)
        {
            int c = e / _d, i = e % _d;
            bool inside = s0 + c < p.S;
            long at = inside ? p.KRow(b, s0 + c, hk) + i : 0;
            _ks[c * _ld + i] = inside ? k[at] : 0f;
            _vs[c * _ld + i] = inside ? v[at] : 0f;
            _dks[c * _ld + i] = 0f;
            _dvs[c * _ld + i] = 0f;
        }
    }

    /// <summary>Q and dO rows t0 .. t0 + rows of head h, with their lse and Δ (zeros and −∞ past them).</summary>
    public void LoadQueries(ArrayView<float> q, ArrayView<float> dOut, ArrayView<float> lse, ArrayView<float> delta,
        AttentionParams p, int b, int h, int t0, int rows)
    {
        Group.Barrier();
        for (int e = Group.IdxX; e < _br * _d; e += Group.DimX)
        {
            int r = e / _d, i = e % _d;
            long at = r < rows ? p.QRow(b, t0 + r, h) + i : 0;
            _qs[r * _ld + i] = r < rows ? q[at] : 0f;
            _dos[r * _ld + i] = r < rows ? dOut[at] : 0f;
        }
        for (int r = Group.IdxX; r < _br; r += Group.DimX)
        {
            _lse[r] = r < rows ? lse[p.LseAt(b, h, t0 + r)] : float.NegativeInfinity;
            _delta[r] = r < rows ? delta[p.LseAt(b, h, t0 + r)] : 0f;
        }
        Group.Barrier();
    }

    /// <summary>P[r, c] = exp(scale·q_r·k_c − lse_r) and dS[r, c] = P·(dO_r·v_c − Δ_r)·scale for visible pairs, else 0
    /// (consecutive threads: consecutive keys).</summary>
    public void Scores(ArrayView<float> mask, AttentionParams p, int b, int t0, int rows, int s0)
    {
        for (int e = Group.IdxX; e < _br * _bc; e += Group.DimX)
        {
            int r = e / _bc, c = e % _bc;
            float pr = 0f, dsv = 0f;
            if (r < rows && _lse[r] != float.NegativeInfinity && p.Visible(mask, b, t0 + r, s0 + c))
            {
                float dot = 0f, dp = 0f;
                for (int i = 0; i < _d; i++)
                {
                    dot += _qs[r * _ld + i] * _ks[c * _ld + i];
                    dp += _dos[r * _ld + i] * _vs[c * _ld + i];
                }
                pr = XMath.Exp(dot * p.Scale - _lse[r]);
                dsv = pr * (dp - _delta[r]) * p.Scale;
            }
            _ps[e] = pr;
            _ds[e] = dsv;
        }
        Group.Barrier();
    }

    /// <summary>dV += Pᵀ·dO and dK += dSᵀ·Q in shared memory; dQ[t0 + r] += dS·K into global memory (atomics).</summary>
    public void Accumulate(ArrayView<float> dq, AttentionParams p, int b, int h, int t0, int rows)
    {
        for (int e = Group.IdxX; e < _bc * _d; e += Group.DimX)
        {
            int c = e / _d, i = e % _d;
            float accV = _dvs[c * _ld + i], accK = _dks[c * _ld + i];
            for (int r = 0; r < _br; r++)
            {
                accV += _ps[r * _bc + c] * _dos[r * _ld + i];
                accK += _ds[r * _bc + c] * _qs[r * _ld + i];
            }
            _dvs[c * _ld + i] = accV;
            _dks[c * _ld + i] = accK;
        }
        for (int e = Group.IdxX; e < rows * _d; e += Group.DimX)
        {
            int r = e / _d, i = e % _d;
            float acc = 0f;
            for (int c = 0; c < _bc; c++) acc += _ds[r * _bc + c] * _ks[c * _ld + i];
            if (acc != 0f) Atomic.Add(ref dq[p.QRow(b, t0 + r, h) + i], acc);
        }
    }

    /// <summary>dK and dV of the tile's keys (those before S) into global memory.</summary>
    public void Store(ArrayView<float> dk, ArrayView<float> dv, AttentionParams p, int b, int hk, int s0)
    {
        Group.Barrier();
        int keys = XMath.Min(_bc, p.S - s0);
        for (int e = Group.IdxX; e < keys * _d; e += Group.DimX)
        {
            int c = e / _d, i = e % _d;
            long at = p.KRow(b, s0 + c, hk) + i;
            dk[at] = _dks[c * _ld + i];
            dv[at] = _dvs[c * _ld + i];
        }
    }
}
