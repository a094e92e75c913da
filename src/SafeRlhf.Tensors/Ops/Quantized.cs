namespace SafeRlhf.Tensors;

// Block-quantized weights (Q8_0, Q4_0; Q4_K, Q5_K, Q6_K read from files): quantize, dequantize and the weight-only quantized linear layer.
public static partial class Ops
{
    /// <summary>F32 x [.., K] (K a multiple of 32) → Q8_0 or Q4_0 storage with the same dims.</summary>
    public static Tensor Quantize(Tensor x, DType dtype)
    {
        if (!dtype.IsQuantized()) throw new TensorDTypeException($"Quantize: {dtype} is not a quantized dtype");
        if (dtype.IsKQuant()) throw new TensorDTypeException($"Quantize: {dtype} is a storage type read from GGUF files; quantize to Q8_0 or Q4_0");
        if (dtype.IsInterleaved()) throw new TensorDTypeException($"Quantize: {dtype} is made from {dtype.FileLayout()} by InterleaveRows; quantize to {dtype.FileLayout()}");
        if (x.DType != DType.F32) throw new TensorDTypeException($"Quantize: expects F32, got {x.DType} {x.Shape}");
        if (x.Rank == 0 || x.Dim(-1) % DTypeInfo.QuantBlock != 0)
            throw new TensorShapeException($"Quantize: last dim of {x.Shape} must be a multiple of {DTypeInfo.QuantBlock}");
        var q = Output(x.Device, dtype, x.Shape.ToArray());
        using var src = x.Contiguous();
        x.Backend.Quantize(src, q);
        return q;
    }

    /// <summary>Q8_0/Q4_0/Q4_K/Q5_K/Q6_K (or Q8_0x16 … Q6_Kx16 [M, K]) → F32 with the same dims.</summary>
    public static Tensor Dequantize(Tensor q)
    {
        if (!q.DType.IsQuantized()) throw new TensorDTypeException($"Dequantize: expects Q8_0, Q4_0, Q4_K, Q5_K, Q6_K or an interleaved layout of them, got {q.DType}");
        if (q.DType.IsInterleaved() && q.Rank != 2) throw new TensorShapeException($"Dequantize: {q.DType} is a matrix [M, K], got {q.Shape}");
        var x = Output(q.Device, DType.F32, q.Shape.ToArray());
        q.Backend.Dequantize(q, x);
        return x;
    }

    /// <summary>x [.., K] (F32) · wᵀ with a frozen low-precision weight w [M, K] stored as Q8_0, Q4_0, Q4_K, Q5_K, Q6_K,
    /// an interleaved layout of them, or BF16 → [.., M].
    /// The gradient flows to x only. BF16 weights are used exactly (widened to fp32).</summary>
    public static Tensor QuantizedMatMul(Tensor x, Tensor w)
    {
        CheckCompute("QuantizedMatMul", x);
        if (!w.DType.IsQuantized() && w.DType != DType.BF16)
            throw new TensorDTypeException($"QuantizedMatMul: weight must be Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, an interleaved layout of them, or BF16, got {w.DType}");
        if (x.DType != DType.F32) throw new TensorDTypeException($"QuantizedMatMul: x must be F32, got {x.DType}");
        if (w.Rank != 2 || x.Rank < 1 || x.Dim(-1) != w.Dim(1))
            throw new TensorShapeException($"QuantizedMatMul: x {x.Shape} and weight {w.Shape} (need x [.., K], w [M, K])");
        int k = w.Dim(1), m = w.Dim(0);
        var lead = x.Shape.ToArray()[..^1];
        int n = (int)new Shape(lead).Numel;
        Tensor x2;
        using (Autograd.GradMode.NoGrad())
        using (var xc = x.Contiguous())
            x2 = xc.Reshape(n, k);
        var y = Output(x.Device, DType.F32, [.. lead, m]);
        using (Autograd.GradMode.NoGrad())
        using (var y2 = y.Reshape(n, m))
            x.Backend.QuantizedMatMul(x2, w, y2);
        var result = Record("QuantizedMatMul", y, [x], [w], dy =>
        {
            var dx = Output(x.Device, DType.F32, x.Shape.ToArray());
            using var dy2 = dy.Contiguous().Reshape(n, m);
            using var dx2 = dx.Reshape(n, k);
            x.Backend.QuantizedMatMulBackward(dy2, w, dx2);
            return [dx];
        });
        return Finish(result, x2);
    }

    /// <summary>w (Q8_0, Q4_0, Q4_K, Q5_K or Q6_K [M, K], M a multiple of 16) → the same weights as Q8_0x16, Q4_0x16,
    /// Q4_Kx16, Q5_Kx16 or Q6_Kx16, the layout whose
    /// product the native CPU backend reads without unpacking (<see cref="QuantBlocks.InterleaveRows"/>). Throws
    /// NotSupportedException on a backend without <see cref="IRowInterleaving"/>.</summary>
    public static Tensor InterleaveRows(Tensor w)
    {
        if (!w.DType.HasInterleavedLayout())
            throw new TensorDTypeException($"InterleaveRows: expects a Q8_0, Q4_0, Q4_K, Q5_K or Q6_K matrix, got {w.DType} {w.Shape}");
        if (w.Rank != 2 || w.Dim(0) % DTypeInfo.InterleavedRows != 0)
            throw new TensorShapeException($"InterleaveRows: needs [M, K] with M a multiple of {DTypeInfo.InterleavedRows}, got {w.Shape}");
        if (!CanInterleaveRows(w.Device))
            throw new NotSupportedException($"InterleaveRows: backend '{w.Backend.Name}' does not compute with row-interleaved weights");
        var dst = Output(w.Device, w.DType.Interleaved(), w.Shape.ToArray());
        using var src = w.Contiguous();
        ((IRowInterleaving)w.Backend).InterleaveRows(src, dst);
        return dst;
    }

    /// <summary>True when the device's backend computes with row-interleaved weights (<see cref="IRowInterleaving"/>).</summary>
    public static bool CanInterleaveRows(Device device) => device.Backend is IRowInterleaving { InterleavesRows: true };
}
