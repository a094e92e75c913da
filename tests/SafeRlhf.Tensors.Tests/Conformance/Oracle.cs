namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>The naive double formulas the conformance suite expects of every backend, written from the definitions of the
/// ops (one loop per formula, no blocking, no fusion). Arrays are row-major in the shapes named on each method.</summary>
public static class Oracle
{
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>y [rows, dim] = softmax (or log-softmax) of each row of x; a row's −∞ entries get 0 (or −∞).</summary>
    public static double[] Softmax(double[] x, int dim, bool log)
    {
        var y = new double[x.Length];
        for (int r = 0; r * dim < x.Length; r++)
        {
            var row = x.AsSpan(r * dim, dim);
            double max = double.NegativeInfinity;
            foreach (double v in row) max = Math.Max(max, v);
            double sum = 0;
            foreach (double v in row) sum += Math.Exp(v - max);
            for (int i = 0; i < dim; i++) y[r * dim + i] = log ? row[i] - max - Math.Log(sum) : Math.Exp(row[i] - max) / sum;
        }
        return y;
    }

    /// <summary>dx of softmax from its output y: y·(dy − Σ dy·y); of log-softmax: dy − exp(y)·Σ dy.</summary>
    public static double[] SoftmaxBackward(double[] y, double[] dy, int dim, bool log)
    {
        var dx = new double[y.Length];
        for (int r = 0; r * dim < y.Length; r++)
        {
            double dot = 0;
            for (int i = r * dim; i < (r + 1) * dim; i++) dot += log ? dy[i] : dy[i] * y[i];
            for (int i = r * dim; i < (r + 1) * dim; i++) dx[i] = log ? dy[i] - Math.Exp(y[i]) * dot : y[i] * (dy[i] - dot);
        }
        return dx;
    }

    /// <summary>rstd [rows] = 1/√(mean x² + eps) and y [rows, dim] = x·rstd·w.</summary>
    public static (double[] Y, double[] Rstd) RmsNorm(double[] x, double[] w, double eps)
    {
        int dim = w.Length, rows = dim == 0 ? 0 : x.Length / dim;
        var y = new double[x.Length];
        var rstd = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += x[r * dim + i] * x[r * dim + i];
            rstd[r] = 1 / Math.Sqrt(ss / dim + eps);
            for (int i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * rstd[r] * w[i];
        }
        return (y, rstd);
    }

    /// <summary>dx [rows, dim] = rstd·w·dy − x·rstd³·(Σ w·dy·x)/dim and dw [dim] = dw0 + Σ_rows dy·x·rstd, from the given rstd.</summary>
    public static (double[] Dx, double[] Dw) RmsNormBackward(double[] x, double[] w, double[] rstd, double[] dy, double[] dw0)
    {
        int dim = w.Length;
        var dx = new double[x.Length];
        var dw = (double[])dw0.Clone();
        for (int r = 0; r < rstd.Length; r++)
        {
            double dot = 0;
            for (int i = 0; i < dim; i++) dot += w[i] * dy[r * dim + i] * x[r * dim + i];
            double s = rstd[r];
            for (int i = 0; i < dim; i++)
            {
                int at = r * dim + i;
                dx[at] = s * w[i] * dy[at] - x[at] * s * s * s * dot / dim;
                dw[i] += dy[at] * x[at] * s;
            }
        }
        return (dx, dw);
    }

    /// <summary>y [B, T, H, D]: each pair of x rotated by position·θ^(−2i/D) (the negative angle when inverse); pairs are
    /// (2i, 2i+1) interleaved or (i, i + D/2) half.</summary>
    public static double[] Rope(double[] x, int[] positions, int heads, int d, double theta, RopeStyle style, bool inverse)
    {
        var y = new double[x.Length];
        for (int token = 0; token < positions.Length; token++)
            for (int h = 0; h < heads; h++)
            {
                int row = (token * heads + h) * d;
                for (int i = 0; i < d / 2; i++)
                {
                    double angle = (inverse ? -1 : 1) * positions[token] * Math.Pow(theta, -2.0 * i / d);
                    int a = style == RopeStyle.Interleaved ? row + 2 * i : row + i;
                    int b = style == RopeStyle.Interleaved ? a + 1 : a + d / 2;
                    y[a] = x[a] * Math.Cos(angle) - x[b] * Math.Sin(angle);
                    y[b] = x[a] * Math.Sin(angle) + x[b] * Math.Cos(angle);
                }
            }
        return y;
    }

    /// <summary>y = silu(gate)·up and its gradients: dGate = dy·up·σ(g)(1 + g(1 − σ(g))), dUp = dy·g·σ(g).</summary>
    public static (double[] Y, double[] DGate, double[] DUp) SwiGlu(double[] g, double[] u, double[] dy)
    {
        var y = new double[g.Length];
        var dg = new double[g.Length];
        var du = new double[g.Length];
        for (int i = 0; i < g.Length; i++)
        {
            double s = Sigmoid(g[i]);
            y[i] = g[i] * s * u[i];
            dg[i] = dy[i] * u[i] * s * (1 + g[i] * (1 - s));
            du[i] = dy[i] * g[i] * s;
        }
        return (y, dg, du);
    }

    /// <summary>lse [N] of each logits row [N, V] and losses [N] = lse − logits[target] (0 where target = ignore).</summary>
    public static (double[] Losses, double[] Lse) CrossEntropy(double[] logits, int[] targets, int v, int ignore)
    {
        var losses = new double[targets.Length];
        var lse = new double[targets.Length];
        for (int n = 0; n < targets.Length; n++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int i = 0; i < v; i++) max = Math.Max(max, logits[n * v + i]);
            for (int i = 0; i < v; i++) sum += Math.Exp(logits[n * v + i] - max);
            lse[n] = max + Math.Log(sum);
            if (targets[n] != ignore) losses[n] = lse[n] - logits[n * v + targets[n]];
        }
        return (losses, lse);
    }

    /// <summary>dLogits [N, V] = dLosses[n]·(exp(logits − lse[n]) − onehot(target)), 0 on ignored rows.</summary>
    public static double[] CrossEntropyBackward(double[] logits, int[] targets, double[] lse, double[] dLosses, int v, int ignore)
    {
        var dx = new double[logits.Length];
        for (int n = 0; n < targets.Length; n++)
        {
            if (targets[n] == ignore) continue;
            for (int i = 0; i < v; i++) dx[n * v + i] = dLosses[n] * (Math.Exp(logits[n * v + i] - lse[n]) - (i == targets[n] ? 1 : 0));
        }
        return dx;
    }

    /// <summary>c [batch, M, N] = c0 (when accumulating) + op(a)·op(b); a is [batch, M, K] ([batch, K, M] when transA),
    /// b is [batch, K, N] ([batch, N, K] when transB).</summary>
    public static double[] MatMul(double[] a, double[] b, double[]? c0, int batch, int m, int n, int k, bool transA, bool transB)
    {
        var c = c0 is null ? new double[batch * m * n] : (double[])c0.Clone();
        for (int p = 0; p < batch; p++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int l = 0; l < k; l++)
                        sum += a[p * m * k + (transA ? l * m + i : i * k + l)] * b[p * k * n + (transB ? j * k + l : l * n + j)];
                    c[(p * m + i) * n + j] += sum;
                }
        return c;
    }

    /// <summary>One AdamW step: m, v moving averages, bias-corrected, decoupled weight decay on the old parameter.</summary>
    public static (double[] P, double[] M, double[] V) AdamW(double[] p, double[] g, double[] m, double[] v, double lr,
        double beta1, double beta2, double eps, double weightDecay, int step)
    {
        var (pn, mn, vn) = (new double[p.Length], new double[p.Length], new double[p.Length]);
        for (int i = 0; i < p.Length; i++)
        {
            mn[i] = beta1 * m[i] + (1 - beta1) * g[i];
            vn[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            double mHat = mn[i] / (1 - Math.Pow(beta1, step)), vHat = vn[i] / (1 - Math.Pow(beta2, step));
            pn[i] = p[i] - lr * (mHat / (Math.Sqrt(vHat) + eps) + weightDecay * p[i]);
        }
        return (pn, mn, vn);
    }
}
