using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

// Matrix products (dense and quantized), quantization and the optimizer step.
public sealed partial class GpuBackend
{
    /// <summary>N at or below which QuantizedMatMul takes the batched GEMV (decode) path; from 16 rows on it takes a GEMM.</summary>
    public const int QuantizedGemvMaxRows = QuantGemvParams.MaxRows;

    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate)
    {
        var (batch, m, n, k) = MatMulShape.Of(a, b, c, transA, transB);
        if (c.Numel == 0) return;
        if (Gemm == GemmEngine.CuBlas)
        {
            CuBlasMatMul(a, b, c, transA, transB, accumulate, batch, m, n, k);
            return;
        }
        // fp32 operands are read in place through their strides; other dtypes are staged contiguous first
        using var sa = a.DType == DType.F32 ? null : In(a);
        using var sb = b.DType == DType.F32 ? null : In(b);
        using var sc = c.DType == DType.F32 ? null : accumulate ? InOut(c) : Out(c);
        var (aView, aOff, aS) = Operand(a, sa);
        var (bView, bOff, bS) = Operand(b, sb);
        var (cView, cOff, cS) = Operand(c, sc);
        var p = new GemmParams(m, n, k, batch,
            aOff, aS[0], transA ? aS[2] : aS[1], transA ? aS[1] : aS[2],
            bOff, bS[0], transB ? bS[2] : bS[1], transB ? bS[1] : bS[2],
            cOff, cS[0], cS[1], cS[2], accumulate);
        _kernels.Gemm.Value(GemmConfig(m, n, batch), aView, bView, cView, p);
    }

    /// <summary>(fp32 view, element offset, strides) of a matrix operand, either in place or staged.</summary>
    private (ArrayView<float> View, long Offset, long[] Strides) Operand(Tensor t, Staged? staged) =>
        staged is null
            ? (Raw(t).Cast<float>(), t.Offset, t.Shape.StridesArray())
            : (staged.F32, 0, Shape.ContiguousStrides(t.Shape.Dims));

    private KernelConfig GemmConfig(int m, int n, int batch)
    {
        int g = GemmSide, tile = 4 * g;
        return new KernelConfig(
            new Index3D((n + tile - 1) / tile, (m + tile - 1) / tile, batch),
            new Index3D(g, g, 1),
            SharedMemoryConfig.RequestDynamic<float>(2 * tile * g));
    }

    private static int QuantKind(Tensor w) => w.DType switch
    {
        DType.Q8_0 => QuantCode.Q8_0,
        DType.Q4_0 => QuantCode.Q4_0,
        DType.Q4_K => QuantCode.Q4_K,
        DType.Q5_K => QuantCode.Q5_K,
        DType.Q6_K => QuantCode.Q6_K,
        _ => throw new TensorDTypeException($"expected a Q8_0, Q4_0, Q4_K, Q5_K or Q6_K weight, got {w.DType}"),
    };

    private ArrayView<byte> QuantBytes(Tensor w)
    {
        if (!w.IsContiguous) throw new TensorShapeException($"quantized tensor {w.Shape} must be contiguous");
        return Raw(w).SubView(w.DType.ByteCount(w.Offset), w.DType.ByteCount(w.Numel));
    }

    /// <summary>c = a · op(w) for a BF16 weight, as a batch of one through <see cref="MatMul"/>, which stages the BF16
    /// operand as fp32 (exact widening).</summary>
    private void Bf16MatMul(Tensor a, Tensor w, Tensor c, bool transB)
    {
        using var a3 = a.Unsqueeze(0);
        using var w3 = w.Unsqueeze(0);
        using var c3 = c.Unsqueeze(0);
        MatMul(a3, w3, c3, transA: false, transB, accumulate: false);
    }

    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y)
    {
        if (w.DType == DType.BF16)
        {
            Bf16MatMul(x, w, y, transB: true);   // y [N, M] = x [N, K] · w [M, K]ᵀ
            return;
        }
        int n = x.Dim(0), k = x.Dim(1), m = w.Dim(0);
        if (w.Dim(1) != k || y.Dim(0) != n || y.Dim(1) != m || k % w.DType.BlockElements() != 0)
            throw new TensorShapeException($"QuantizedMatMul: x {x.Shape}, w {w.Shape}, y {y.Shape}");
        int kind = QuantKind(w);
        if (y.Numel == 0) return;
        using var sx = In(x);
        using var sy = Out(y);
        var wb = QuantBytes(w);
        if (n <= QuantizedGemvMaxRows)
        {
            _kernels.QuantGemv.Value(QuantGemvConfig(m), sx.F32, wb, sy.F32, new QuantGemvParams(n, m, k, kind));
            return;
        }
        if (UseWeightScratch)
        {
            ScratchQuantizedMatMul(sx.F32, w, sy.F32, n, m, k, backward: false);
            return;
        }
        // rows of x against columns of Wᵀ: W(kk, j) is weight element j·K + kk
        var p = new GemmParams(n, m, k, 1, 0, 0, k, 1, 0, 0, 1, k, 0, 0, m, 1, accumulate: false);
        _kernels.QuantGemm.Value(GemmConfig(n, m, 1), sx.F32, wb, sy.F32, p, kind);
    }

    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx)
    {
        if (w.DType == DType.BF16)
        {
            Bf16MatMul(dy, w, dx, transB: false);   // dx [N, K] = dy [N, M] · w [M, K]
            return;
        }
        int n = dy.Dim(0), m = dy.Dim(1), k = w.Dim(1);
        if (w.Dim(0) != m || dx.Dim(0) != n || dx.Dim(1) != k)
            throw new TensorShapeException($"QuantizedMatMulBackward: dy {dy.Shape}, w {w.Shape}, dx {dx.Shape}");
        int kind = QuantKind(w);
        if (dx.Numel == 0) return;
        using var sdy = In(dy);
        using var sdx = Out(dx);
        if (UseWeightScratch && n > QuantizedGemvMaxRows)
        {
            ScratchQuantizedMatMul(sdy.F32, w, sdx.F32, n, m, k, backward: true);
            return;
        }
        // dx [N, K] = dy [N, M] · W [M, K]: W(kk = m, j = k) is weight element m·K + k
        var p = new GemmParams(n, k, m, 1, 0, 0, m, 1, 0, 0, k, 1, 0, 0, k, 1, accumulate: false);
        _kernels.QuantGemm.Value(GemmConfig(n, k, 1), sdy.F32, QuantBytes(w), sdx.F32, p, kind);
    }

    public void Quantize(Tensor x, Tensor q)
    {
        RequireSameDims("Quantize", x, q);
        if (q.DType.IsKQuant()) throw new TensorDTypeException($"Quantize: {q.DType} is read from files only (quantize to Q8_0 or Q4_0)");
        int kind = QuantKind(q);
        if (x.Dim(-1) % DTypeInfo.QuantBlock != 0)
            throw new TensorShapeException($"Quantize: last axis of {x.Shape} is not a multiple of {DTypeInfo.QuantBlock}");
        if (x.Numel == 0) return;
        using var sx = In(x);
        long blocks = x.Numel / DTypeInfo.QuantBlock;
        _kernels.Quantize.Value(Linear(blocks), sx.F32, QuantBytes(q), new QuantizeParams(blocks, kind));
    }

    public void Dequantize(Tensor q, Tensor x)
    {
        RequireSameDims("Dequantize", q, x);
        int kind = QuantKind(q);
        if (x.Numel == 0) return;
        using var sx = Out(x);
        long blocks = x.Numel / DTypeInfo.QuantBlock;
        _kernels.Dequantize.Value(Linear(x.Numel), QuantBytes(q), sx.F32, new QuantizeParams(blocks, kind));
    }

    public double SumOfSquares(Tensor x)
    {
        // x² with the elementwise kernel, then the reduction kernel to one value (accumulated in fp32 on the device).
        if (x.Numel == 0) return 0;
        using var squares = Tensor.Uninitialized(x.Device, DType.F32, x.Shape.ToArray());
        Unary(UnaryOp.Square, x, squares, 0, 0);
        using var total = Tensor.Uninitialized(x.Device, DType.F32, Enumerable.Repeat(1, x.Rank).ToArray());
        ReduceSum(squares, total);
        return total.ToDoubleArray()[0];
    }

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "AdamW: step counts from 1");
        RequireSameDims("AdamW", param, grad);
        RequireSameDims("AdamW", param, m);
        RequireSameDims("AdamW", param, v);
        if (param.Numel == 0) return;
        using var sp = InOut(param);
        using var sg = In(grad);
        using var sm = InOut(m);
        using var sv = InOut(v);
        var p = new AdamWParams(param.Numel, (float)lr, (float)beta1, (float)beta2, (float)eps, (float)weightDecay,
            (float)(1 - Math.Pow(beta1, step)), (float)(1 - Math.Pow(beta2, step)));
        _kernels.AdamW.Value(Linear(param.Numel), sp.F32, sg.F32, sm.F32, sv.F32, p);
    }
}
