namespace SafeRlhf.Tensors.Profiling;

// Every IBackend call forwarded to the inner backend and charged to its op (ProfilingBackend.cs: timing and napkin math).
public sealed partial class ProfilingBackend
{
    // ---------------- memory ----------------

    public Storage Allocate(DType dtype, long count)
    {
        using (Time("Allocate", 0, dtype.IsQuantized() && count % dtype.BlockElements() != 0 ? 0 : dtype.ByteCount(count)))
            return Inner.Allocate(dtype, count);
    }

    public MemoryStats Memory => Inner.Memory;

    public void ResetPeakMemory() => Inner.ResetPeakMemory();

    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src)
    {
        using (Time("Write", 0, src.Length)) Inner.Write(dst, byteOffset, src);
    }

    public void Read(Storage src, long byteOffset, Span<byte> dst)
    {
        using (Time("Read", 0, dst.Length)) Inner.Read(src, byteOffset, dst);
    }

    public void Copy(Tensor src, Tensor dst)
    {
        using (Time("Copy", 0, B(src) + B(dst))) Inner.Copy(src, dst);
    }

    public void Fill(Tensor dst, double value)
    {
        using (Time("Fill", 0, B(dst))) Inner.Fill(dst, value);
    }

    // ---------------- elementwise ----------------

    public void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b)
    {
        using (Time(UnaryNames[(int)op], UnaryCost(op) * y.Numel, B(x) + B(y))) Inner.Unary(op, x, y, a, b);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b)
    {
        using (Time(UnaryBackwardNames[(int)op], 2.0 * UnaryCost(op) * dx.Numel, B(x) + B(y) + B(dy) + B(dx)))
            Inner.UnaryBackward(op, x, y, dy, dx, a, b);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c)
    {
        using (Time(BinaryNames[(int)op], c.Numel, B(a) + B(b) + B(c))) Inner.Binary(op, a, b, c);
    }

    public void Where(Tensor cond, Tensor a, Tensor b, Tensor y)
    {
        using (Time("Where", y.Numel, B(cond) + B(a) + B(b) + B(y))) Inner.Where(cond, a, b, y);
    }

    public void ReduceSum(Tensor x, Tensor y)
    {
        using (Time("ReduceSum", x.Numel, B(x) + B(y))) Inner.ReduceSum(x, y);
    }

    // ---------------- linear algebra ----------------

    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate)
    {
        using (Time("MatMul", MatMulFlops(a, c, transA, accumulate), B(a) + B(b) + B(c) * (accumulate ? 2 : 1)))
            Inner.MatMul(a, b, c, transA, transB, accumulate);
    }

    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y)
    {
        using (Time("QuantizedMatMul", 2.0 * y.Numel * w.Dim(-1), B(x) + B(w) + B(y))) Inner.QuantizedMatMul(x, w, y);
    }

    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx)
    {
        using (Time("QuantizedMatMulBackward", 2.0 * dx.Numel * w.Dim(0), B(dy) + B(w) + B(dx)))
            Inner.QuantizedMatMulBackward(dy, w, dx);
    }

    public void Quantize(Tensor x, Tensor q)
    {
        using (Time("Quantize", 3.0 * x.Numel, B(x) + B(q))) Inner.Quantize(x, q);
    }

    public void Dequantize(Tensor q, Tensor x)
    {
        using (Time("Dequantize", x.Numel, B(q) + B(x))) Inner.Dequantize(q, x);
    }

    public bool InterleavesRows => Inner is IRowInterleaving { InterleavesRows: true };

    /// <summary>Forwards to the inner backend (recorded as "InterleaveRows").</summary>
    public void InterleaveRows(Tensor w, Tensor dst)
    {
        if (Inner is not IRowInterleaving { InterleavesRows: true } inner)
            throw new NotSupportedException($"InterleaveRows: backend '{Inner.Name}' does not compute with row-interleaved weights");
        using (Time("InterleaveRows", 0, B(w) + B(dst))) inner.InterleaveRows(w, dst);
    }

    // ---------------- fused neural-network ops ----------------

    public void Softmax(Tensor x, Tensor y, bool log)
    {
        using (Time(log ? "LogSoftmax" : "Softmax", 4.0 * y.Numel, B(x) + B(y))) Inner.Softmax(x, y, log);
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log)
    {
        using (Time(log ? "LogSoftmaxBackward" : "SoftmaxBackward", 3.0 * dx.Numel, B(y) + B(dy) + B(dx)))
            Inner.SoftmaxBackward(y, dy, dx, log);
    }

    public void Gather(Tensor x, Tensor index, Tensor y, int axis)
    {
        using (Time("Gather", 0, B(index) + 2 * B(y))) Inner.Gather(x, index, y, axis);
    }

    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis)
    {
        using (Time("ScatterAdd", dy.Numel, B(index) + 3 * B(dy))) Inner.ScatterAdd(dy, index, dx, axis);
    }

    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps)
    {
        using (Time("RmsNorm", 4.0 * x.Numel, B(x) + B(w) + B(y) + B(rstd))) Inner.RmsNorm(x, w, y, rstd, eps);
    }

    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw)
    {
        using (Time("RmsNormBackward", 10.0 * x.Numel, B(x) + B(w) + B(rstd) + B(dy) + B(dx) + 2 * B(dw)))
            Inner.RmsNormBackward(x, w, rstd, dy, dx, dw);
    }

    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse)
    {
        using (Time(inverse ? "RopeBackward" : "Rope", 6.0 * y.Numel, B(x) + B(positions) + B(y)))
            Inner.Rope(x, positions, y, theta, style, inverse);
    }

    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale)
    {
        using (Time("Attention", AttentionFlops(q, k), B(q) + B(k) + B(v) + B(keyMask) + B(o) + B(lse)))
            Inner.Attention(q, k, v, keyMask, o, lse, scale);
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale)
    {
        using (Time("AttentionBackward", 2.5 * AttentionFlops(q, k),
                   B(q) + B(k) + B(v) + B(keyMask) + B(o) + B(lse) + B(dOut) + B(dq) + B(dk) + B(dv)))
            Inner.AttentionBackward(q, k, v, keyMask, o, lse, dOut, dq, dk, dv, scale);
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        using (Time("SwiGlu", 6.0 * y.Numel, B(gate) + B(up) + B(y))) Inner.SwiGlu(gate, up, y);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        using (Time("SwiGluBackward", 12.0 * dy.Numel, B(gate) + B(up) + B(dy) + B(dGate) + B(dUp)))
            Inner.SwiGluBackward(gate, up, dy, dGate, dUp);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex)
    {
        using (Time("CrossEntropy", 4.0 * logits.Numel, B(logits) + B(targets) + B(losses) + B(lse)))
            Inner.CrossEntropy(logits, targets, losses, lse, ignoreIndex);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex)
    {
        using (Time("CrossEntropyBackward", 4.0 * logits.Numel, B(logits) + B(targets) + B(lse) + B(dLosses) + B(dLogits)))
            Inner.CrossEntropyBackward(logits, targets, lse, dLosses, dLogits, ignoreIndex);
    }

    // ---------------- optimizer ----------------

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step)
    {
        using (Time("AdamW", 15.0 * param.Numel, 2 * B(param) + B(grad) + 2 * B(m) + 2 * B(v)))
            Inner.AdamW(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step);
    }

    public double SumOfSquares(Tensor x)
    {
        using (Time("SumOfSquares", 2.0 * x.Numel, B(x))) return Inner.SumOfSquares(x);
    }
}
