using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

// Matrix products, block quantization and the optimizer step.
public sealed unsafe partial class NativeBackend : IRowInterleaving
{
    /// <summary>Row-major matrix view of a rank-3 operand: leading dimension and batch stride, or null when
    /// its last axis is not unit-stride (then the reference backend handles the product).</summary>
    private static (long Ld, long BatchStride)? MatrixLayout(Tensor t)
    {
        int rows = t.Dim(1), cols = t.Dim(2);
        if (cols > 1 && t.Shape.Stride(2) != 1) return null;
        long ld = rows > 1 ? t.Shape.Stride(1) : Math.Max(cols, 1);
        if (ld < cols) return null;
        return (ld, t.Dim(0) > 1 ? t.Shape.Stride(0) : 0);
    }

    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate)
    {
        var (batch, m, n, k) = MatMulShape.Of(a, b, c, transA, transB);
        var la = MatrixLayout(a);
        var lb = MatrixLayout(b);
        if (a.DType != DType.F32 || b.DType != DType.F32 || !IsF32(c) || la is null || lb is null)
            throw Unsupported("MatMul", a, b, c);
        if (c.Numel == 0) return;
        fixed (byte* pa = ((CpuStorage)a.Storage).Bytes, pb = ((CpuStorage)b.Storage).Bytes, pc = ((CpuStorage)c.Storage).Bytes)
        {
            Check(NativeMethods.sr_matmul_f32(batch, m, n, k, 1.0f,
                (float*)pa + a.Offset, la.Value.Ld, la.Value.BatchStride, transA ? 1 : 0,
                (float*)pb + b.Offset, lb.Value.Ld, lb.Value.BatchStride, transB ? 1 : 0,
                accumulate ? 1.0f : 0.0f, (float*)pc + c.Offset, n, (long)m * n), "sr_matmul_f32");
        }
    }

    private static int QuantType(Tensor w, string op) => w.DType switch
    {
        DType.Q8_0 => NativeMethods.Q8_0,
        DType.Q4_0 => NativeMethods.Q4_0,
        DType.Q4_K => NativeMethods.Q4_K,
        DType.Q5_K => NativeMethods.Q5_K,
        DType.Q6_K => NativeMethods.Q6_K,
        DType.Q8_0x16 => NativeMethods.Q8_0X16,
        DType.Q4_0x16 => NativeMethods.Q4_0X16,
        DType.Q4_Kx16 => NativeMethods.Q4_KX16,
        DType.Q5_Kx16 => NativeMethods.Q5_KX16,
        DType.Q6_Kx16 => NativeMethods.Q6_KX16,
        _ => throw new TensorDTypeException($"{op}: {w.DType} is not a quantized dtype"),
    };

    /// <summary>The storage type of a QuantizedMatMul weight: a block type, or BF16.</summary>
    private static int WeightType(Tensor w, string op) => w.DType == DType.BF16 ? NativeMethods.BF16 : QuantType(w, op);

    /// <summary>QuantizedMatMul's BF16 variant y [N, M] = x [N, K] · wᵀ with a BF16 weight w [M, K] through AVX-512 BF16
    /// <c>vdpbf16ps</c> (native storage type SR_BF16_DOT): x is rounded to bf16 (nearest-even) before the products, so the
    /// result differs from <see cref="QuantizedMatMul"/> (which widens w exactly) by that rounding. Not an IBackend path;
    /// throws <see cref="BackendException"/> on a CPU without AVX512_BF16.</summary>
    public static void QuantizedMatMulBf16Dot(Tensor x, Tensor w, Tensor y)
    {
        if (w.DType != DType.BF16 || !AllF32(x, y) || !w.IsContiguous || x.Rank != 2 || w.Rank != 2 || y.Rank != 2
            || x.Dim(1) != w.Dim(1) || y.Dim(0) != x.Dim(0) || y.Dim(1) != w.Dim(0))
            throw new TensorShapeException($"QuantizedMatMulBf16Dot: x {x.DType} {x.Shape}, w {w.DType} {w.Shape}, y {y.DType} {y.Shape} " +
                                           "(need contiguous F32 x [N, K], BF16 w [M, K], F32 y [N, M])");
        int n = x.Dim(0), k = x.Dim(1), m = w.Dim(0);
        fixed (byte* px = RawBytes(x), pw = RawBytes(w), py = RawBytes(y))
            Check(NativeMethods.sr_quantized_matmul_f32(NativeMethods.BF16Dot, (float*)px, pw, (float*)py, n, m, k), "sr_quantized_matmul_f32");
    }

    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y)
    {
        int type = WeightType(w, "QuantizedMatMul");
        if (x.Rank != 2 || w.Rank != 2 || y.Rank != 2 || x.Dim(1) != w.Dim(1) || y.Dim(0) != x.Dim(0) || y.Dim(1) != w.Dim(0))
            throw new TensorShapeException($"QuantizedMatMul: x {x.Shape}, w {w.Shape}, y {y.Shape} (need x [N, K], w [M, K], y [N, M])");
        if (!AllF32(x, y) || !w.IsContiguous)
            throw Unsupported("QuantizedMatMul", x, w, y);
        int n = x.Dim(0), k = x.Dim(1), m = w.Dim(0);
        fixed (byte* px = RawBytes(x), pw = RawBytes(w), py = RawBytes(y))
            Check(NativeMethods.sr_quantized_matmul_f32(type, (float*)px, pw, (float*)py, n, m, k), "sr_quantized_matmul_f32");
    }

    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx)
    {
        int type = WeightType(w, "QuantizedMatMulBackward");
        if (dy.Rank != 2 || w.Rank != 2 || dx.Rank != 2 || dy.Dim(1) != w.Dim(0) || dx.Dim(0) != dy.Dim(0) || dx.Dim(1) != w.Dim(1))
            throw new TensorShapeException($"QuantizedMatMulBackward: dy {dy.Shape}, w {w.Shape}, dx {dx.Shape} (need dy [N, M], w [M, K], dx [N, K])");
        if (!AllF32(dy, dx) || !w.IsContiguous)
            throw Unsupported("QuantizedMatMulBackward", dy, w, dx);
        int n = dy.Dim(0), m = dy.Dim(1), k = w.Dim(1);
        fixed (byte* pdy = RawBytes(dy), pw = RawBytes(w), pdx = RawBytes(dx))
            Check(NativeMethods.sr_quantized_matmul_backward_f32(type, (float*)pdy, pw, (float*)pdx, n, m, k), "sr_quantized_matmul_backward_f32");
    }

    public bool InterleavesRows => true;

    public void InterleaveRows(Tensor w, Tensor dst)
    {
        if (!w.DType.IsQuantized() || dst.DType != w.DType.Interleaved() || w.Rank != 2 || !w.Shape.SameDims(dst.Shape)
            || !w.IsContiguous || !dst.IsContiguous)
            throw Unsupported("InterleaveRows", w, dst);
        fixed (byte* pw = RawBytes(w), pd = RawBytes(dst))
            Check(NativeMethods.sr_interleave_rows_q(QuantType(dst, "InterleaveRows"), pw, pd, w.Dim(0), w.Dim(1)), "sr_interleave_rows_q");
    }

    public void Quantize(Tensor x, Tensor q)
    {
        if (q.DType.IsKQuant()) throw new TensorDTypeException($"Quantize: {q.DType} is read from files only (quantize to Q8_0 or Q4_0)");
        int type = QuantType(q, "Quantize");
        if (!x.Shape.SameDims(q.Shape)) throw new TensorShapeException($"Quantize: x {x.Shape} vs q {q.Shape}");
        if (!IsF32(x) || !q.IsContiguous)
            throw Unsupported("Quantize", x, q);
        if (x.Numel == 0) return;
        fixed (byte* px = RawBytes(x), pq = RawBytes(q))
            Check(NativeMethods.sr_quantize_f32(type, (float*)px, pq, x.Numel), "sr_quantize_f32");
    }

    public void Dequantize(Tensor q, Tensor x)
    {
        int type = QuantType(q, "Dequantize");
        if (!x.Shape.SameDims(q.Shape)) throw new TensorShapeException($"Dequantize: q {q.Shape} vs x {x.Shape}");
        if (!IsF32(x) || !q.IsContiguous)
            throw Unsupported("Dequantize", q, x);
        if (x.Numel == 0) return;
        fixed (byte* px = RawBytes(x), pq = RawBytes(q))
        {
            if (q.DType.IsInterleaved())
                Check(NativeMethods.sr_dequantize_f32_rows(type, pq, (float*)px, q.Dim(0), q.Dim(1)), "sr_dequantize_f32_rows");
            else
                Check(NativeMethods.sr_dequantize_f32(type, pq, (float*)px, x.Numel), "sr_dequantize_f32");
        }
    }

    public double SumOfSquares(Tensor x)
    {
        if (!IsF32(x)) throw Unsupported("SumOfSquares", x);
        double total;
        fixed (byte* px = RawBytes(x))
            Check(NativeMethods.sr_sum_of_squares_f32((float*)px, x.Numel, &total), "sr_sum_of_squares_f32");
        return total;
    }

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "AdamW: step counts from 1");
        if (!AllF32(param, grad, m, v) || grad.Numel != param.Numel || m.Numel != param.Numel || v.Numel != param.Numel)
            throw Unsupported("AdamW", param, grad, m, v);
        if (param.Numel == 0) return;
        fixed (byte* pp = RawBytes(param), pg = RawBytes(grad), pm = RawBytes(m), pv = RawBytes(v))
            Check(NativeMethods.sr_adamw_f32((float*)pp, (float*)pg, (float*)pm, (float*)pv, param.Numel, lr, beta1, beta2, eps,
                weightDecay, step), "sr_adamw_f32");
    }
}
