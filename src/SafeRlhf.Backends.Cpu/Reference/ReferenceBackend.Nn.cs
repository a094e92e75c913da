using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Reference.Elements;

namespace SafeRlhf.Backends.Cpu.Reference;

// Fused neural-network ops, each forward next to its backward.
public sealed partial class ReferenceBackend
{
    // ---- softmax over the last axis ----

    public void Softmax(Tensor x, Tensor y, bool log)
    {
        var xs = Load(x);
        int d = x.Dim(-1);
        var ys = new double[xs.Length];
        for (int r = 0; r * d < xs.Length; r++)
        {
            var row = xs.AsSpan(r * d, d);
            double lse = LogSumExp(row);
            for (int i = 0; i < d; i++) ys[r * d + i] = log ? row[i] - lse : Math.Exp(row[i] - lse);
        }
        Store(y, ys);
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log)
    {
        var ys = Load(y);
        var dys = Load(dy);
        int d = y.Dim(-1);
        var dxs = new double[ys.Length];
        for (int r = 0; r * d < ys.Length; r++)
        {
            double dot = 0;
            for (int i = 0; i < d; i++) dot += log ? dys[r * d + i] : dys[r * d + i] * ys[r * d + i];
            for (int i = 0; i < d; i++)
            {
                int at = r * d + i;
                dxs[at] = log ? dys[at] - Math.Exp(ys[at]) * dot : ys[at] * (dys[at] - dot);
            }
        }
        Store(dx, dxs);
    }

    internal static double LogSumExp(ReadOnlySpan<double> row)
    {
        double max = double.NegativeInfinity;
        foreach (double v in row) max = Math.Max(max, v);
        if (double.IsNegativeInfinity(max)) return max;
        double sum = 0;
        foreach (double v in row) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    // ---- gather / scatter-add along an axis ----

    public void Gather(Tensor x, Tensor index, Tensor y, int axis)
    {
        var xs = Load(x);
        var idx = LoadIndex(index);
        var ys = new double[idx.Length];
        ForEachGather(x.Shape, index.Shape, axis, idx, "Gather", (src, dst) => ys[dst] = xs[src]);
        Store(y, ys);
    }

    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis)
    {
        var dys = Load(dy);
        var idx = LoadIndex(index);
        var dxs = Load(dx);
        ForEachGather(dx.Shape, index.Shape, axis, idx, "ScatterAdd", (src, dst) => dxs[src] += dys[dst]);
        Store(dx, dxs);
    }

    /// <summary>Calls body(source offset in x, offset in index) for every index element.</summary>
    private static void ForEachGather(Shape xShape, Shape indexShape, int axis, int[] idx, string op, Action<long, long> body)
    {
        axis = xShape.NormalizeAxis(axis);
        var xStrides = Shape.ContiguousStrides(xShape.Dims);
        var dims = indexShape.ToArray();
        var coord = new int[dims.Length];
        int extent = xShape[axis];
        for (long k = 0; k < idx.Length; k++)
        {
            int j = idx[k];
            if (j < 0 || j >= extent)
                throw new TensorIndexException($"{op}: index {j} out of range [0, {extent}) on axis {axis} of {xShape}");
            long src = 0;
            for (int a = 0; a < dims.Length; a++) src += (a == axis ? j : coord[a]) * xStrides[a];
            body(src, k);
            for (int a = dims.Length - 1; a >= 0; a--)
            {
                if (++coord[a] < dims[a]) break;
                coord[a] = 0;
            }
        }
    }

    // ---- RMSNorm ----

    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps)
    {
        var xs = Load(x);
        var ws = Load(w);
        int d = ws.Length;
        var ys = new double[xs.Length];
        var rs = new double[rstd.Numel];
        for (int r = 0; r < rs.Length; r++)
        {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += xs[r * d + i] * xs[r * d + i];
            rs[r] = 1.0 / Math.Sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) ys[r * d + i] = xs[r * d + i] * rs[r] * ws[i];
        }
        Store(y, ys);
        Store(rstd, rs);
    }

    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw)
    {
        var xs = Load(x);
        var ws = Load(w);
        var rs = Load(rstd);
        var dys = Load(dy);
        var dws = Load(dw);
        int d = ws.Length;
        var dxs = new double[xs.Length];
        for (int r = 0; r < rs.Length; r++)
        {
            // y = x·r·w with r = (mean(x²)+eps)^(-1/2): dx = r·(w·dy) − x·r³·Σ(w·dy·x)/d
            double dot = 0;
            for (int i = 0; i < d; i++) dot += ws[i] * dys[r * d + i] * xs[r * d + i];
            double r3 = rs[r] * rs[r] * rs[r];
            for (int i = 0; i < d; i++)
            {
                int at = r * d + i;
                dxs[at] = rs[r] * ws[i] * dys[at] - xs[at] * r3 * dot / d;
                dws[i] += dys[at] * xs[at] * rs[r];
            }
        }
        Store(dx, dxs);
        Store(dw, dws);
    }

    // ---- RoPE ----

    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse)
    {
        var xs = Load(x);
        var pos = LoadIndex(positions);
        int batch = x.Dim(0), t = x.Dim(1), heads = x.Dim(2), d = x.Dim(3), half = d / 2;
        var ys = new double[xs.Length];
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < t; s++)
            {
                int p = pos[b * t + s];
                for (int h = 0; h < heads; h++)
                {
                    long row = (((long)b * t + s) * heads + h) * d;
                    for (int i = 0; i < half; i++)
                    {
                        double angle = p * Math.Pow(theta, -2.0 * i / d);
                        double cos = Math.Cos(angle), sin = inverse ? -Math.Sin(angle) : Math.Sin(angle);
                        long i0 = style == RopeStyle.Interleaved ? row + 2 * i : row + i;
                        long i1 = style == RopeStyle.Interleaved ? row + 2 * i + 1 : row + i + half;
                        ys[i0] = xs[i0] * cos - xs[i1] * sin;
                        ys[i1] = xs[i0] * sin + xs[i1] * cos;
                    }
                }
            }
        Store(y, ys);
    }

    // ---- SwiGLU ----

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        var g = Load(gate);
        var u = Load(up);
        var ys = new double[g.Length];
        for (int i = 0; i < g.Length; i++) ys[i] = g[i] * Sigmoid(g[i]) * u[i];
        Store(y, ys);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        var g = Load(gate);
        var u = Load(up);
        var dys = Load(dy);
        var dg = new double[g.Length];
        var du = new double[g.Length];
        for (int i = 0; i < g.Length; i++)
        {
            double s = Sigmoid(g[i]);
            du[i] = dys[i] * g[i] * s;
            dg[i] = dys[i] * u[i] * s * (1 + g[i] * (1 - s));
        }
        Store(dGate, dg);
        Store(dUp, du);
    }

    // ---- cross-entropy ----

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex)
    {
        var xs = Load(logits);
        var ts = LoadIndex(targets);
        int v = logits.Dim(1);
        var ls = new double[ts.Length];
        var lses = new double[ts.Length];
        for (int n = 0; n < ts.Length; n++)
        {
            lses[n] = LogSumExp(xs.AsSpan(n * v, v));
            if (ts[n] == ignoreIndex) continue;
            if (ts[n] < 0 || ts[n] >= v) throw new TensorIndexException($"CrossEntropy: target {ts[n]} out of range [0, {v}) at row {n}");
            ls[n] = lses[n] - xs[n * v + ts[n]];
        }
        Store(losses, ls);
        Store(lse, lses);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex)
    {
        var xs = Load(logits);
        var ts = LoadIndex(targets);
        var lses = Load(lse);
        var dl = Load(dLosses);
        int v = logits.Dim(1);
        var dx = new double[xs.Length];
        for (int n = 0; n < ts.Length; n++)
        {
            if (ts[n] == ignoreIndex) continue;
            for (int i = 0; i < v; i++) dx[n * v + i] = dl[n] * Math.Exp(xs[n * v + i] - lses[n]);
            dx[n * v + ts[n]] -= dl[n];
        }
        Store(dLogits, dx);
    }
}
