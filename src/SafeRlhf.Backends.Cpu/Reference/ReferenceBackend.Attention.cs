using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Reference.Elements;

namespace SafeRlhf.Backends.Cpu.Reference;

// Causal GQA attention, computed the textbook way: one row of probabilities per query.
public sealed partial class ReferenceBackend
{
    private readonly record struct AttentionDims(int B, int T, int S, int H, int Hkv, int D)
    {
        public long Q(int b, int t, int h) => (((long)b * T + t) * H + h) * D;
        public long K(int b, int s, int hk) => (((long)b * S + s) * Hkv + hk) * D;
        public int KvHead(int h) => h / (H / Hkv);
        /// <summary>Key positions visible to query t: causal (aligned at the end) and not padding.</summary>
        public bool Visible(double[]? mask, int b, int t, int s) => s <= S - T + t && (mask is null || mask[b * S + s] != 0);
    }

    private static AttentionDims DimsOf(Tensor q, Tensor k) => new(q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3));

    /// <summary>k and v may be BF16 (a BF16 KV cache): read as stored, widened exactly, and accumulated in double like fp32
    /// inputs, so this is the oracle of the BF16 kernels given the same rounded keys and values.</summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale)
    {
        var a = DimsOf(q, k);
        var qs = Load(q);
        var ks = Load(k);
        var vs = Load(v);
        var mask = keyMask is null ? null : Load(keyMask);
        var os = new double[qs.Length];
        var lses = new double[(long)a.B * a.H * a.T];
        var scores = new double[a.S];
        for (int b = 0; b < a.B; b++)
            for (int h = 0; h < a.H; h++)
                for (int t = 0; t < a.T; t++)
                {
                    int hk = a.KvHead(h);
                    long qo = a.Q(b, t, h);
                    for (int s = 0; s < a.S; s++)
                        scores[s] = a.Visible(mask, b, t, s) ? scale * Dot(qs, qo, ks, a.K(b, s, hk), a.D) : double.NegativeInfinity;
                    double l = LogSumExp(scores);
                    lses[((long)b * a.H + h) * a.T + t] = l;
                    if (double.IsNegativeInfinity(l)) continue;
                    for (int s = 0; s < a.S; s++)
                    {
                        if (double.IsNegativeInfinity(scores[s])) continue;
                        double p = Math.Exp(scores[s] - l);
                        long vo = a.K(b, s, hk);
                        for (int i = 0; i < a.D; i++) os[qo + i] += p * vs[vo + i];
                    }
                }
        Store(o, os);
        Store(lse, lses);
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale)
    {
        var a = DimsOf(q, k);
        var qs = Load(q);
        var ks = Load(k);
        var vs = Load(v);
        var os = Load(o);
        var lses = Load(lse);
        var dos = Load(dOut);
        var mask = keyMask is null ? null : Load(keyMask);
        var dqs = new double[qs.Length];
        var dks = new double[ks.Length];
        var dvs = new double[vs.Length];
        for (int b = 0; b < a.B; b++)
            for (int h = 0; h < a.H; h++)
                for (int t = 0; t < a.T; t++)
                {
                    double l = lses[((long)b * a.H + h) * a.T + t];
                    if (double.IsNegativeInfinity(l)) continue;
                    int hk = a.KvHead(h);
                    long qo = a.Q(b, t, h);
                    // D = Σ_s p_s·(dO·v_s) = dO·o
                    double delta = Dot(dos, qo, os, qo, a.D);
                    for (int s = 0; s < a.S; s++)
                    {
                        if (!a.Visible(mask, b, t, s)) continue;
                        long ko = a.K(b, s, hk);
                        double p = Math.Exp(scale * Dot(qs, qo, ks, ko, a.D) - l);
                        double dp = Dot(dos, qo, vs, ko, a.D);
                        double dScore = p * (dp - delta) * scale;
                        for (int i = 0; i < a.D; i++)
                        {
                            dqs[qo + i] += dScore * ks[ko + i];
                            dks[ko + i] += dScore * qs[qo + i];
                            dvs[ko + i] += p * dos[qo + i];
                        }
                    }
                }
        Store(dq, dqs);
        Store(dk, dks);
        Store(dv, dvs);
    }

    private static double Dot(double[] x, long xo, double[] y, long yo, int n)
    {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += x[xo + i] * y[yo + i];
        return sum;
    }
}
