using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Reference.Elements;

namespace SafeRlhf.Backends.Cpu.Reference;

// Matrix products, quantization and the optimizer step.
public sealed partial class ReferenceBackend : IRowInterleaving
{
    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate)
    {
        var (batch, m, n, k) = MatMulShape.Of(a, b, c, transA, transB);
        var av = Load(a);
        var bv = Load(b);
        var cv = accumulate ? Load(c) : new double[c.Numel];
        Product(av, bv, cv, batch, m, n, k, transA, transB);
        Store(c, cv);
    }

    /// <summary>cv[p] += op(av[p]) · op(bv[p]) for p in batch: op(a) [M, K], op(b) [K, N], c [M, N], contiguous; each
    /// element summed over K in order.</summary>
    private static void Product(double[] av, double[] bv, double[] cv, int batch, int m, int n, int k, bool transA, bool transB)
    {
        for (int p = 0; p < batch; p++)
        {
            long ao = (long)p * m * k, bo = (long)p * k * n, co = (long)p * m * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int l = 0; l < k; l++)
                    {
                        double x = transA ? av[ao + (long)l * m + i] : av[ao + (long)i * k + l];
                        double y = transB ? bv[bo + (long)j * k + l] : bv[bo + (long)l * n + j];
                        sum += x * y;
                    }
                    cv[co + (long)i * n + j] += sum;
                }
        }
    }

    public bool InterleavesRows => true;

    public void InterleaveRows(Tensor w, Tensor dst)
    {
        if (dst.DType != w.DType.Interleaved() || w.Rank != 2 || !w.Shape.SameDims(dst.Shape) || !w.IsContiguous || !dst.IsContiguous)
            throw new TensorShapeException($"InterleaveRows: w {w.DType} {w.Shape} → dst {dst.DType} {dst.Shape}");
        QuantBlocks.InterleaveRows(dst.DType, RawBytes(w), RawBytes(dst), w.Dim(0), w.Dim(1));
    }

    public void Quantize(Tensor x, Tensor q)
    {
        var xs = Array.ConvertAll(Load(x), v => (float)v);
        QuantizedBlocks.QuantizeRow(q.DType, xs, RawBytes(q));
    }

    public void Dequantize(Tensor q, Tensor x)
    {
        var xs = DequantizeAll(q);
        Store(x, Array.ConvertAll(xs, v => (double)v));
    }

    private static float[] DequantizeAll(Tensor q)
    {
        if (!q.IsContiguous) throw new TensorShapeException($"Dequantize: quantized tensor {q.Shape} must be contiguous");
        var xs = new float[q.Numel];
        if (q.DType.IsInterleaved())
        {
            var file = new byte[q.DType.ByteCount(q.Numel)];
            QuantBlocks.DeinterleaveRows(q.DType, RawBytes(q), file, q.Dim(0), q.Dim(1));
            QuantizedBlocks.DequantizeRow(q.DType.FileLayout(), file, xs);
        }
        else QuantizedBlocks.DequantizeRow(q.DType, RawBytes(q), xs);
        return xs;
    }

    /// <summary>The values of a low-precision weight: dequantized blocks, or BF16 widened exactly.</summary>
    private static double[] WeightValues(Tensor w) =>
        w.DType == DType.BF16 ? Load(w) : Array.ConvertAll(DequantizeAll(w), v => (double)v);

    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y)
    {
        int n = x.Dim(0), k = x.Dim(1), m = w.Dim(0);
        var xs = Load(x);
        var ws = WeightValues(w);
        var ys = new double[(long)n * m];
        Product(xs, ws, ys, 1, n, m, k, transA: false, transB: true);   // y [N, M] = x [N, K] · w [M, K]ᵀ
        Store(y, ys);
    }

    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx)
    {
        int n = dy.Dim(0), m = dy.Dim(1), k = w.Dim(1);
        var dys = Load(dy);
        var ws = WeightValues(w);
        var dxs = new double[(long)n * k];
        Product(dys, ws, dxs, 1, n, k, m, transA: false, transB: false);   // dx [N, K] = dy [N, M] · w [M, K]
        Store(dx, dxs);
    }

    public double SumOfSquares(Tensor x)
    {
        double total = 0;
        foreach (double v in Load(x)) total += v * v;
        return total;
    }

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "AdamW: step counts from 1");
        var p = Load(param);
        var g = Load(grad);
        var mv = Load(m);
        var vv = Load(v);
        double bc1 = 1 - Math.Pow(beta1, step), bc2 = 1 - Math.Pow(beta2, step);
        for (int i = 0; i < p.Length; i++)
        {
            mv[i] = beta1 * mv[i] + (1 - beta1) * g[i];
            vv[i] = beta2 * vv[i] + (1 - beta2) * g[i] * g[i];
            double mHat = mv[i] / bc1, vHat = vv[i] / bc2;
            p[i] -= lr * (mHat / (Math.Sqrt(vHat) + eps) + weightDecay * p[i]);
        }
        Store(param, p);
        Store(m, mv);
        Store(v, vv);
    }
}
