namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>Causal scaled-dot-product attention with GQA, one query row at a time in double: q [B, T, H, D], k and v
/// [B, S, Hkv, D], query t at key position S − T + t sees the keys at or before it whose mask entry is not 0; head h reads
/// key/value head h / (H / Hkv).</summary>
public sealed record AttentionOracle(int B, int T, int S, int H, int Hkv, int D, double[]? Mask, double Scale)
{
    private int Q(int b, int t, int h) => ((b * T + t) * H + h) * D;
    private int K(int b, int s, int h) => ((b * S + s) * Hkv + h / (H / Hkv)) * D;
    private bool Sees(int b, int t, int s) => s <= S - T + t && (Mask is null || Mask[b * S + s] != 0);

    private double Score(double[] q, double[] k, int b, int t, int h, int s)
    {
        double dot = 0;
        for (int i = 0; i < D; i++) dot += q[Q(b, t, h) + i] * k[K(b, s, h) + i];
        return Scale * dot;
    }

    /// <summary>o [B, T, H, D] = Σ softmax(scores)·v and lse [B, H, T] = log Σ exp(scores); a query that sees no key has
    /// o = 0 and lse = −∞.</summary>
    public (double[] O, double[] Lse) Forward(double[] q, double[] k, double[] v)
    {
        var o = new double[B * T * H * D];
        var lse = new double[B * H * T];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++)
                {
                    double max = double.NegativeInfinity, sum = 0;
                    for (int s = 0; s < S; s++) if (Sees(b, t, s)) max = Math.Max(max, Score(q, k, b, t, h, s));
                    for (int s = 0; s < S; s++) if (Sees(b, t, s)) sum += Math.Exp(Score(q, k, b, t, h, s) - max);
                    double l = sum == 0 ? double.NegativeInfinity : max + Math.Log(sum);
                    lse[(b * H + h) * T + t] = l;
                    for (int s = 0; s < S; s++)
                    {
                        if (!Sees(b, t, s)) continue;
                        double p = Math.Exp(Score(q, k, b, t, h, s) - l);
                        for (int i = 0; i < D; i++) o[Q(b, t, h) + i] += p * v[K(b, s, h) + i];
                    }
                }
        return (o, lse);
    }

    /// <summary>dq, dk, dv from the probabilities p = exp(score − lse) of the given lse: dP = dO·v, dS = p·(dP − dO·o),
    /// dq = scale·Σ dS·k, dk += scale·dS·q, dv += p·dO (GQA heads add into their shared key/value head).</summary>
    public (double[] Dq, double[] Dk, double[] Dv) Backward(double[] q, double[] k, double[] v, double[] o, double[] lse, double[] dO)
    {
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int h = 0; h < H; h++)
                {
                    double l = lse[(b * H + h) * T + t], delta = 0;
                    if (double.IsNegativeInfinity(l)) continue;
                    for (int i = 0; i < D; i++) delta += dO[Q(b, t, h) + i] * o[Q(b, t, h) + i];
                    for (int s = 0; s < S; s++)
                    {
                        if (!Sees(b, t, s)) continue;
                        double p = Math.Exp(Score(q, k, b, t, h, s) - l), dp = 0;
                        for (int i = 0; i < D; i++) dp += dO[Q(b, t, h) + i] * v[K(b, s, h) + i];
                        double ds = p * (dp - delta);
                        for (int i = 0; i < D; i++)
                        {
                            dq[Q(b, t, h) + i] += Scale * ds * k[K(b, s, h) + i];
                            dk[K(b, s, h) + i] += Scale * ds * q[Q(b, t, h) + i];
                            dv[K(b, s, h) + i] += p * dO[Q(b, t, h) + i];
                        }
                    }
                }
        return (dq, dk, dv);
    }
}
