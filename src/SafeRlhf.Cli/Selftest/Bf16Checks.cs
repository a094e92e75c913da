using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Cli.Selftest;

/// <summary>The reduced-precision paths against the native CPU backend's fp32, under the bounds derived from BF16's
/// rounding (<see cref="Bf16Rounding"/>) rather than the fp32 tolerances: dense matmuls with BF16 inputs (a device
/// created with --matmul-inputs bf16) and attention over a BF16 KV cache. Each row's error is the largest
/// |device − cpu| as a share of its element's bound, so it passes at ≤ 1.</summary>
public sealed class Bf16Checks(Device cpu, SelftestReport report)
{
    /// <summary>y = x·wᵀ with x [rows, k], w [m, k] on <paramref name="device"/> (whose backend rounds both operands to
    /// BF16) against fp32 on the CPU.</summary>
    public void MatMul(Device device, string shape, int rows, int k, int m)
    {
        report.Run("matmul x·wᵀ, BF16 inputs", shape, () =>
        {
            var x = Values(31, (long)rows * k);
            var w = Values(32, (long)m * k);
            var y = Linear(device, x, w, rows, k, m);
            var reference = Linear(cpu, x, w, rows, k, m);
            double share = WorstShareOfDotBound(y, reference, x, w, rows, k, m);
            return new SelftestRow("matmul x·wᵀ, BF16 inputs", shape, share <= 1, share, 1,
                $"share of the bound |x||w|·(2u + u² + 2γ) per element, u = 2⁻⁸, K = {k}");
        });
    }

    /// <summary>max over elements of |y − reference| / <see cref="Bf16Rounding.DotBound"/>(Σ|x||w|, k) for y = x·wᵀ,
    /// x [rows, k], w [m, k] row-major.</summary>
    public static double WorstShareOfDotBound(double[] y, double[] reference, float[] x, float[] w, int rows, int k, int m)
    {
        double worst = 0;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < m; j++)
            {
                double absDot = 0;
                for (int c = 0; c < k; c++) absDot += Math.Abs((double)x[(long)i * k + c] * w[(long)j * k + c]);
                double err = Math.Abs(y[(long)i * m + j] - reference[(long)i * m + j]);
                double bound = Bf16Rounding.DotBound(absDot, k);
                worst = Math.Max(worst, bound > 0 ? err / bound : err == 0 ? 0 : double.PositiveInfinity);
            }
        return worst;
    }

    /// <summary>One decode step (T = 1 against S keys) with the keys and values in a BF16 cache on
    /// <paramref name="device"/>, against fp32 keys and values on the CPU.</summary>
    public void DecodeAttention(Device device, string shape, int heads, int kvHeads, int headDim, int keys)
    {
        report.Run("attention decode, BF16 KV", shape, () =>
        {
            var q = Values(41, (long)heads * headDim);
            var k = Values(42, (long)keys * kvHeads * headDim);
            var v = Values(43, (long)keys * kvHeads * headDim);
            var o = Attend(device, q, k, v, heads, kvHeads, headDim, keys, DType.BF16);
            var reference = Attend(cpu, q, k, v, heads, kvHeads, headDim, keys, DType.F32);
            double scale = 1 / Math.Sqrt(headDim), worst = 0;
            int rep = heads / kvHeads;
            for (int h = 0; h < heads; h++)
            {
                int hk = h / rep;
                double e = 0;
                var maxV = new double[headDim];
                for (int s = 0; s < keys; s++)
                {
                    double absDot = 0;
                    for (int i = 0; i < headDim; i++)
                    {
                        long at = ((long)s * kvHeads + hk) * headDim + i;
                        absDot += Math.Abs((double)q[h * headDim + i] * k[at]);
                        maxV[i] = Math.Max(maxV[i], Math.Abs(v[at]));
                    }
                    e = Math.Max(e, scale * absDot * Bf16Rounding.UnitRoundoff);
                }
                for (int i = 0; i < headDim; i++)
                {
                    // fp32 accumulation on both sides: γ over the keys and the head dimension, a margin far below the BF16 term
                    double bound = Bf16Rounding.AttentionOutputBound(e, maxV[i]) + 2 * Bf16Rounding.F32SumFactor(keys + headDim) * maxV[i];
                    worst = Math.Max(worst, Math.Abs(o[h * headDim + i] - reference[h * headDim + i]) / bound);
                }
            }
            return new SelftestRow("attention decode, BF16 KV", shape, worst <= 1, worst, 1,
                "share of the bound (e^{2E} − 1)(1 + u)·max|v| + u·max|v|, E = scale·u·max Σ|q||k|");
        });
    }

    private static float[] Values(int seed, long count)
    {
        var rng = new Random(seed);
        var data = new float[count];
        for (long i = 0; i < count; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        return data;
    }

    private static double[] Linear(Device d, float[] x, float[] w, int rows, int k, int m)
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        return Ops.Linear(Tensor.FromArray(d, x, rows, k), Tensor.FromArray(d, w, m, k)).ToArray<double>();
    }

    private static double[] Attend(Device d, float[] q, float[] k, float[] v, int heads, int kvHeads, int headDim, int keys, DType storage)
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        var kt = Tensor.FromArray(d, k, 1, keys, kvHeads, headDim);
        var vt = Tensor.FromArray(d, v, 1, keys, kvHeads, headDim);
        if (storage != DType.F32)
        {
            kt = kt.Cast(storage);
            vt = vt.Cast(storage);
        }
        return Ops.Attention(Tensor.FromArray(d, q, 1, 1, heads, headDim), kt, vt).ToArray<double>();
    }
}
