using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>The online-softmax core shared by the attention forward and the split-KV decode: up to Br query rows
/// (in shared memory) against a range of keys streamed in tiles of Bc through shared memory, keeping per row the
/// running max m, the running sum l and the unnormalised output O. Rows of Q, O, K and V are stored with a padded
/// stride of D + 1 floats, so that the lanes of a warp, which take consecutive keys (scores) or consecutive head
/// dimensions (P·V), hit distinct shared-memory banks; the Q and P reads they share are broadcasts. The softmax
/// update runs one warp per query row (several rows per warp when Br exceeds the warp count), its lanes splitting
/// the tile's keys and combining with warp shuffles. Layout (floats): Q Br·(D+1) | K Bc·(D+1) | V Bc·(D+1) |
/// O Br·(D+1) | S Br·Bc | m, l, α Br each (<see cref="AttentionParams.ForwardSharedFloats"/>). Every thread of the
/// group must call each method.</summary>
public readonly struct OnlineSoftmaxTile
{
    private readonly ArrayView<float> _qs, _ks, _vs, _os, _ss, _rowMax, _rowSum, _alpha;
    private readonly int _br, _bc, _d, _ld;

    public OnlineSoftmaxTile(ArrayView<float> shared, int br, int bc, int d)
    {
        _br = br; _bc = bc; _d = d; _ld = d + 1;
        long at = 0;
        _qs = shared.SubView(at, br * _ld); at += br * _ld;
        _ks = shared.SubView(at, bc * _ld); at += bc * _ld;
        _vs = shared.SubView(at, bc * _ld); at += bc * _ld;
        _os = shared.SubView(at, br * _ld); at += br * _ld;
        _ss = shared.SubView(at, br * bc); at += br * bc;
        _rowMax = shared.SubView(at, br); at += br;
        _rowSum = shared.SubView(at, br); at += br;
        _alpha = shared.SubView(at, br);
    }

    /// <summary>Loads query rows r &lt; <paramref name="rows"/> from q[qBase + r·qStride ..] (zeros past them) and
    /// clears O, m = −∞ and l = 0.</summary>
    public void Start(ArrayView<float> q, long qBase, long qStride, int rows)
    {
        for (int e = Group.IdxX; e < _br * _d; e += Group.DimX)
        {
            int r = e / _d, i = e % _d;
            _qs[r * _ld + i] = r < rows ? q[qBase + r * qStride + i] : 0f;
            _os[r * _ld + i] = 0f;
        }
        for (int r = Group.IdxX; r < _br; r += Group.DimX)
        {
            _rowMax[r] = float.NegativeInfinity;
            _rowSum[r] = 0f;
        }
        Group.Barrier();
    }

    /// <summary>Streams keys [kvFrom, kvTo) of KV head <paramref name="hk"/> from <paramref name="kv"/> (fp32 or BF16
    /// storage, see <see cref="IKeyValueRows"/>): row r is query t0 + r·tStep (tStep 0: every row is the same query
    /// position, as for the query heads of one KV head in decoding).</summary>
    public void Accumulate<TKv>(TKv kv, ArrayView<float> mask, AttentionParams p,
        int b, int hk, int t0, int tStep, int rows, int kvFrom, int kvTo) where TKv : struct, IKeyValueRows
    {
        for (int s0 = kvFrom; s0 < kvTo; s0 += _bc)
        {
            LoadKeys(kv, p, b, hk, s0, kvTo);
            Scores(mask, p, b, t0, tStep, rows, s0, kvTo);
            Softmax();
            WeightedValues();
        }
    }

    private void LoadKeys<TKv>(TKv kv, AttentionParams p, int b, int hk, int s0, int kvTo) where TKv : struct, IKeyValueRows
    {
        for (int e = Group.IdxX; e < _bc * _d; e += Group.DimX)
        {
            int c = e / _d, i = e % _d;
            bool inside = s0 + c < kvTo;
            long at = inside ? p.KRow(b, s0 + c, hk) + i : 0;
            _ks[c * _ld + i] = inside ? kv.Key(at) : 0f;
            _vs[c * _ld + i] = inside ? kv.Value(at) : 0f;
        }
        Group.Barrier();
    }

    /// <summary>S[r, c] = scale·q_r·k_c, or −∞ where the key is invisible (consecutive threads: consecutive keys).</summary>
    private void Scores(ArrayView<float> mask, AttentionParams p, int b, int t0, int tStep, int rows, int s0, int kvTo)
    {
        for (int e = Group.IdxX; e < _br * _bc; e += Group.DimX)
        {
            int r = e / _bc, c = e % _bc;
            float score = float.NegativeInfinity;
            if (r < rows && s0 + c < kvTo && p.Visible(mask, b, t0 + r * tStep, s0 + c))
            {
                float dot = 0f;
                for (int i = 0; i < _d; i++) dot += _qs[r * _ld + i] * _ks[c * _ld + i];
                score = dot * p.Scale;
            }
            _ss[e] = score;
        }
        Group.Barrier();
    }

    /// <summary>One warp per row: the new max, P = exp(S − m) in place, α = exp(m_old − m), l = α·l + ΣP.</summary>
    private void Softmax()
    {
        int lane = Warp.LaneIdx, warps = Group.DimX / Warp.WarpSize;
        for (int r = Warp.WarpIdx; r < _br; r += warps)
        {
            float mOld = _rowMax[r];
            float m = float.NegativeInfinity;
            for (int c = lane; c < _bc; c += Warp.WarpSize) m = XMath.Max(m, _ss[r * _bc + c]);
            float mNew = XMath.Max(mOld, DeviceMath.WarpMax(m));
            float sum = 0f;
            for (int c = lane; c < _bc; c += Warp.WarpSize)
            {
                float s = _ss[r * _bc + c];
                float pr = s == float.NegativeInfinity ? 0f : XMath.Exp(s - mNew);
                _ss[r * _bc + c] = pr;
                sum += pr;
            }
            sum = DeviceMath.WarpSum(sum);
            if (lane == 0)
            {
                // a row with no visible key so far keeps m = −∞, l = 0 and O = 0
                float scaleOld = mOld == float.NegativeInfinity ? (mNew == float.NegativeInfinity ? 1f : 0f) : XMath.Exp(mOld - mNew);
                _alpha[r] = scaleOld;
                _rowSum[r] = _rowSum[r] * scaleOld + sum;
                _rowMax[r] = mNew;
            }
        }
        Group.Barrier();
    }

    /// <summary>O[r, i] = α_r·O[r, i] + Σ_c P[r, c]·V[c, i] (consecutive threads: consecutive head dimensions).</summary>
    private void WeightedValues()
    {
        for (int e = Group.IdxX; e < _br * _d; e += Group.DimX)
        {
            int r = e / _d, i = e % _d;
            float acc = _os[r * _ld + i] * _alpha[r];
            for (int c = 0; c < _bc; c++) acc += _ss[r * _bc + c] * _vs[c * _ld + i];
            _os[r * _ld + i] = acc;
        }
        Group.Barrier();
    }

    /// <summary>The normalised output O[r, i] / l_r (0 for a row that saw no key).</summary>
    public float Output(int r, int i)
    {
        float l = _rowSum[r];
        return l > 0f ? _os[r * _ld + i] / l : 0f;
    }

    /// <summary>lse_r = m_r + log l_r (−∞ for a row that saw no key).</summary>
    public float LogSumExp(int r)
    {
        float l = _rowSum[r];
        return l > 0f ? _rowMax[r] + XMath.Log(l) : float.NegativeInfinity;
    }
}
