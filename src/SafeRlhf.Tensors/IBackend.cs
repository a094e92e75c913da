namespace SafeRlhf.Tensors;

/// <summary>Unary elementwise ops. Parameters a and b are used by Scale (y = a·x), AddScalar (y = x + a)
/// and Clamp (y = min(max(x, a), b)).</summary>
public enum UnaryOp
{
    Neg, Exp, Log, Sqrt, Rsqrt, Silu, Sigmoid, LogSigmoid, Square, Abs, Scale, AddScalar, Clamp,
}

/// <summary>Binary elementwise ops with broadcasting. Comparisons return 1 or 0 in the operand dtype.</summary>
public enum BinaryOp
{
    Add, Sub, Mul, Div, Minimum, Maximum, Less, LessEqual, Greater, GreaterEqual, Equal,
}

/// <summary>RoPE conventions: interleaved pairs (x[2i], x[2i+1]) as in Meta/llama2.c, or rotate-half
/// pairs (x[i], x[i + d/2]) as in Hugging Face.</summary>
public enum RopeStyle { Interleaved, Half }

/// <summary>The kernels a device runs. The tensor layer allocates every output (zero-filled) and passes
/// contiguous inputs unless a method says otherwise; backends only compute. Shapes in comments use
/// LLaMA names: B batch, T query length, S key length, H heads, Hkv key/value heads, D head dim.</summary>
public interface IBackend
{
    string Name { get; }

    // ---- memory ----
    /// <summary>Zero-filled storage for <paramref name="count"/> elements of <paramref name="dtype"/>.</summary>
    Storage Allocate(DType dtype, long count);
    /// <summary>Live, reserved and peak bytes of this device's pool.</summary>
    MemoryStats Memory { get; }
    /// <summary>Starts new high-water marks from the current levels.</summary>
    void ResetPeakMemory();
    void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src);
    void Read(Storage src, long byteOffset, Span<byte> dst);

    /// <summary>dst = src elementwise over arbitrary strides (either side may be a strided view; same
    /// dims; dtype conversion between F32, F64, BF16, F16 and I32).</summary>
    void Copy(Tensor src, Tensor dst);
    void Fill(Tensor dst, double value);

    // ---- elementwise ----
    /// <summary>y = f(x; a, b).</summary>
    void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b);
    /// <summary>dx = dy · f'(x) (x and y = f(x) are both given).</summary>
    void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b);
    /// <summary>c = a ∘ b; a and b are views already broadcast to c's dims (stride 0 on broadcast axes).</summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c);
    /// <summary>y = cond ≠ 0 ? a : b; all three inputs are views broadcast to y's dims.</summary>
    void Where(Tensor cond, Tensor a, Tensor b, Tensor y);

    /// <summary>y = sum of x over the axes where y has extent 1 and x does not (y has x's rank).</summary>
    void ReduceSum(Tensor x, Tensor y);

    // ---- linear algebra ----
    /// <summary>c[b] (+)= op(a[b]) · op(b[b]) for b in batch; a [batch, M, K] or [batch, K, M] when
    /// transA; b [batch, K, N] or [batch, N, K] when transB; c [batch, M, N]; accumulate adds into c.</summary>
    void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate);
    /// <summary>y [N, M] = x [N, K] · wᵀ with w [M, K] kept in a storage type: "quantized" means a reduced-precision
    /// weight type, the ggml blocks Q8_0, Q4_0, Q4_K, Q5_K, Q6_K or BF16 (BF16 exactly, widened to fp32).</summary>
    void QuantizedMatMul(Tensor x, Tensor w, Tensor y);
    /// <summary>dx [N, K] = dy [N, M] · w with w [M, K] in a storage type as for <see cref="QuantizedMatMul"/> (the weight
    /// is frozen).</summary>
    void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx);
    /// <summary>q [.., K] (Q8_0/Q4_0) from x [.., K] (F32), ggml-compatible rounding.</summary>
    void Quantize(Tensor x, Tensor q);
    /// <summary>x [.., K] (F32) from q [.., K] (Q8_0/Q4_0).</summary>
    void Dequantize(Tensor q, Tensor x);

    // ---- fused neural-network ops ----
    /// <summary>y = softmax(x) (or log-softmax) over the last axis.</summary>
    void Softmax(Tensor x, Tensor y, bool log);
    void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log);
    /// <summary>y[.., j, ..] = x[.., index[.., j, ..], ..] along axis; index I32 with y's dims.</summary>
    void Gather(Tensor x, Tensor index, Tensor y, int axis);
    /// <summary>dx[.., index[.., j, ..], ..] += dy[.., j, ..] along axis (dx is accumulated into).</summary>
    void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis);
    /// <summary>y [.., D] = x / rms(x) · w; rstd [..] saved for the backward.</summary>
    void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps);
    /// <summary>dx and dw (dw accumulated into) of RmsNorm.</summary>
    void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw);
    /// <summary>y [B, T, H, D] = x rotated by position·θ^(−2i/D); positions I32 [B, T];
    /// inverse rotates by the negative angle (the backward).</summary>
    void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse);
    /// <summary>Causal scaled-dot-product attention with GQA. q [B, T, H, D]; k, v [B, S, Hkv, D];
    /// query t sits at key position S − T + t and sees keys ≤ that; keyMask [B, S] (1 keep, 0 pad) or
    /// null; o [B, T, H, D]; lse [B, H, T] log-sum-exp of the scaled scores (saved for backward).
    /// A query with no visible key outputs 0 and lse = −∞.</summary>
    /// <remarks>k and v may be batch-strided (<see cref="Shape.IsPackedBelowFirstAxis"/>, the same batch stride for
    /// both): the filled part of a KV cache is read in place.</remarks>
    void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale);
    /// <summary>dq, dk, dv of Attention, recomputing probabilities from lse.</summary>
    void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale);
    /// <summary>y = silu(gate) · up.</summary>
    void SwiGlu(Tensor gate, Tensor up, Tensor y);
    void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp);
    /// <summary>losses [N] = lse(logits[n]) − logits[n, target[n]] (0 where target = ignoreIndex);
    /// logits [N, V]; targets I32 [N]; lse [N] saved.</summary>
    void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex);
    /// <summary>dLogits [N, V] = dLosses[n] · (softmax(logits[n]) − onehot(target[n])), 0 on ignored rows.</summary>
    void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex);

    // ---- optimizer ----
    /// <summary>One AdamW step in place (decoupled weight decay, bias correction with step ≥ 1).</summary>
    void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step);
    /// <summary>Σ x² over every element of x (the squared norm for gradient clipping). The CPU backends accumulate in
    /// double; the GPU backend squares and sums in fp32 on the device.</summary>
    double SumOfSquares(Tensor x);
}
