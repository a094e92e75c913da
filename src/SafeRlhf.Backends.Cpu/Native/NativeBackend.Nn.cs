using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

// Fused neural-network ops: softmax, RMSNorm, RoPE, SwiGLU, cross-entropy, attention.
public sealed unsafe partial class NativeBackend
{
    public void Softmax(Tensor x, Tensor y, bool log)
    {
        if (!AllF32(x, y) || x.Rank == 0 || !x.Shape.SameDims(y.Shape))
            throw Unsupported("Softmax", x, y);
        if (x.Numel == 0) return;
        long dim = x.Dim(-1), rows = x.Numel / dim;
        fixed (byte* px = RawBytes(x), py = RawBytes(y))
            Check(NativeMethods.sr_softmax_forward_f32((float*)px, (float*)py, rows, dim, log ? 1 : 0), "sr_softmax_forward_f32");
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log)
    {
        if (!AllF32(y, dy, dx) || y.Rank == 0 || !y.Shape.SameDims(dy.Shape) || !y.Shape.SameDims(dx.Shape))
            throw Unsupported("SoftmaxBackward", y, dy, dx);
        if (y.Numel == 0) return;
        long dim = y.Dim(-1), rows = y.Numel / dim;
        fixed (byte* py = RawBytes(y), pdy = RawBytes(dy), pdx = RawBytes(dx))
            Check(NativeMethods.sr_softmax_backward_f32((float*)py, (float*)pdy, (float*)pdx, rows, dim, log ? 1 : 0), "sr_softmax_backward_f32");
    }

    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps)
    {
        if (!AllF32(x, w, y, rstd) || x.Rank == 0 || !x.Shape.SameDims(y.Shape) || w.Numel != x.Dim(-1)
            || (x.Dim(-1) > 0 && rstd.Numel != x.Numel / x.Dim(-1)))
            throw Unsupported("RmsNorm", x, w, y, rstd);
        long dim = x.Dim(-1);
        if (x.Numel == 0)
        {
            if (dim == 0) Floats(rstd).Fill(1f / MathF.Sqrt(float.NaN));     // the mean square of an empty row is 0/0
            return;
        }
        fixed (byte* px = RawBytes(x), pw = RawBytes(w), py = RawBytes(y), pr = RawBytes(rstd))
            Check(NativeMethods.sr_rmsnorm_forward_f32((float*)px, (float*)pw, (float*)py, (float*)pr, x.Numel / dim, dim, (float)eps),
                "sr_rmsnorm_forward_f32");
    }

    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw)
    {
        long dim = x.Rank == 0 ? 0 : x.Dim(-1);
        if (AllF32(x, w, rstd, dy, dx, dw) && x.Rank > 0 && x.Numel == 0) return;
        if (!AllF32(x, w, rstd, dy, dx, dw) || dim == 0 || w.Numel != dim || dw.Numel != dim
            || rstd.Numel != x.Numel / dim || !x.Shape.SameDims(dy.Shape) || !x.Shape.SameDims(dx.Shape))
            throw Unsupported("RmsNormBackward", x, w, rstd, dy, dx, dw);
        fixed (byte* px = RawBytes(x), pw = RawBytes(w), pr = RawBytes(rstd), pdy = RawBytes(dy), pdx = RawBytes(dx), pdw = RawBytes(dw))
            Check(NativeMethods.sr_rmsnorm_backward_f32((float*)px, (float*)pw, (float*)pr, (float*)pdy, (float*)pdx, (float*)pdw,
                x.Numel / dim, dim), "sr_rmsnorm_backward_f32");
    }

    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse)
    {
        if (x.Rank != 4 || !x.Shape.SameDims(y.Shape) || positions.Numel != (long)x.Dim(0) * x.Dim(1))
            throw new TensorShapeException($"Rope: x {x.Shape}, positions {positions.Shape}, y {y.Shape} (need x = y [B, T, H, D], positions [B, T])");
        if (!AllF32(x, y) || !IsIndex(positions))
            throw Unsupported("Rope", x, positions, y);
        if (x.Numel == 0) return;
        fixed (byte* px = RawBytes(x), pp = RawBytes(positions), py = RawBytes(y))
            Check(NativeMethods.sr_rope_f32((float*)px, (int*)pp, (float*)py, x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), theta,
                style == RopeStyle.Interleaved ? NativeMethods.RopeInterleaved : NativeMethods.RopeHalf, inverse ? 1 : 0), "sr_rope_f32");
    }

    /// <summary>Keys and values are fp32, or both BF16 (a BF16 KV cache, widened to fp32 as the kernel reads them).</summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale)
    {
        bool bf16 = k.DType == DType.BF16 && v.DType == DType.BF16;
        if (!AttentionNative(q, k, v, keyMask, o, lse, o, batchStridedKv: true, bf16Kv: bf16))
            throw Unsupported("Attention", q, k, v, keyMask, o, lse);
        long kvBatchStride = k.Shape.FirstAxisStride;
        if (v.Shape.FirstAxisStride != kvBatchStride)
            throw new TensorShapeException($"Attention: k and v batch strides differ ({kvBatchStride} vs {v.Shape.FirstAxisStride})");
        fixed (byte* pq = RawBytes(q), pk = RawBytes(k), pv = RawBytes(v), po = RawBytes(o), pl = RawBytes(lse))
        fixed (byte* pm = keyMask is null ? default : RawBytes(keyMask))
        {
            if (bf16)
                Check(NativeMethods.sr_attention_forward_f32_bf16kv((float*)pq, (ushort*)pk, (ushort*)pv, (float*)pm, (float*)po, (float*)pl,
                    q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3), kvBatchStride, (float)scale), "sr_attention_forward_f32_bf16kv");
            else
                Check(NativeMethods.sr_attention_forward_f32((float*)pq, (float*)pk, (float*)pv, (float*)pm, (float*)po, (float*)pl,
                    q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3), kvBatchStride, (float)scale), "sr_attention_forward_f32");
        }
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale)
    {
        if (!AttentionNative(q, k, v, keyMask, o, lse, dOut) || !AllF32(dq, dk, dv)
            || !dq.Shape.SameDims(q.Shape) || !dk.Shape.SameDims(k.Shape) || !dv.Shape.SameDims(v.Shape))
            throw Unsupported("AttentionBackward", q, k, v, keyMask, o, lse, dOut, dq, dk, dv);
        fixed (byte* pq = RawBytes(q), pk = RawBytes(k), pv = RawBytes(v), po = RawBytes(o), pl = RawBytes(lse), pdo = RawBytes(dOut))
        fixed (byte* pdq = RawBytes(dq), pdk = RawBytes(dk), pdv = RawBytes(dv))
        fixed (byte* pm = keyMask is null ? default : RawBytes(keyMask))
            Check(NativeMethods.sr_attention_backward_f32((float*)pq, (float*)pk, (float*)pv, (float*)pm, (float*)po, (float*)pl,
                (float*)pdo, (float*)pdq, (float*)pdk, (float*)pdv, q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3),
                (float)scale), "sr_attention_backward_f32");
    }

    /// <summary>Validates attention shapes (throws on a mismatch) and says whether the native kernel applies.</summary>
    private static bool AttentionNative(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor outLike,
        bool batchStridedKv = false, bool bf16Kv = false)
    {
        if (q.Rank != 4 || k.Rank != 4 || !k.Shape.SameDims(v.Shape) || k.Dim(0) != q.Dim(0) || k.Dim(3) != q.Dim(3)
            || k.Dim(1) < q.Dim(1) || (q.Dim(2) > 0 && (k.Dim(2) == 0 || q.Dim(2) % k.Dim(2) != 0))
            || !o.Shape.SameDims(q.Shape) || !outLike.Shape.SameDims(q.Shape) || lse.Numel != (long)q.Dim(0) * q.Dim(2) * q.Dim(1)
            || (keyMask is not null && keyMask.Numel != (long)k.Dim(0) * k.Dim(1)))
            throw new TensorShapeException($"Attention: q {q.Shape}, k {k.Shape}, v {v.Shape}, o {o.Shape}, lse {lse.Shape}" +
                (keyMask is null ? "" : $", keyMask {keyMask.Shape}"));
        var kvType = bf16Kv ? DType.BF16 : DType.F32;
        bool kvOk = batchStridedKv
            ? k.DType == kvType && v.DType == kvType && k.Shape.IsPackedBelowFirstAxis && v.Shape.IsPackedBelowFirstAxis
            : AllF32(k, v);
        return kvOk && AllF32(q, o, lse, outLike) && (keyMask is null || IsF32(keyMask));
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        if (!AllF32(gate, up, y) || !gate.Shape.SameDims(up.Shape) || !gate.Shape.SameDims(y.Shape))
            throw Unsupported("SwiGlu", gate, up, y);
        if (gate.Numel == 0) return;
        fixed (byte* pg = RawBytes(gate), pu = RawBytes(up), py = RawBytes(y))
            Check(NativeMethods.sr_swiglu_forward_f32((float*)pg, (float*)pu, (float*)py, gate.Numel), "sr_swiglu_forward_f32");
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        if (!AllF32(gate, up, dy, dGate, dUp) || !gate.Shape.SameDims(up.Shape) || !gate.Shape.SameDims(dy.Shape)
            || !gate.Shape.SameDims(dGate.Shape) || !gate.Shape.SameDims(dUp.Shape))
            throw Unsupported("SwiGluBackward", gate, up, dy, dGate, dUp);
        if (gate.Numel == 0) return;
        fixed (byte* pg = RawBytes(gate), pu = RawBytes(up), pdy = RawBytes(dy), pdg = RawBytes(dGate), pdu = RawBytes(dUp))
            Check(NativeMethods.sr_swiglu_backward_f32((float*)pg, (float*)pu, (float*)pdy, (float*)pdg, (float*)pdu, gate.Numel),
                "sr_swiglu_backward_f32");
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex)
    {
        if (!AllF32(logits, losses, lse) || !IsIndex(targets) || logits.Rank != 2 || targets.Numel != logits.Dim(0)
            || losses.Numel != logits.Dim(0) || lse.Numel != logits.Dim(0))
            throw Unsupported("CrossEntropy", logits, targets, losses, lse);
        if (logits.Dim(0) == 0) return;
        fixed (byte* px = RawBytes(logits), pt = RawBytes(targets), pl = RawBytes(losses), pe = RawBytes(lse))
            Check(NativeMethods.sr_cross_entropy_forward_f32((float*)px, (int*)pt, (float*)pl, (float*)pe, logits.Dim(0), logits.Dim(1),
                ignoreIndex), "sr_cross_entropy_forward_f32");
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex)
    {
        if (!AllF32(logits, lse, dLosses, dLogits) || !IsIndex(targets) || logits.Rank != 2 || targets.Numel != logits.Dim(0)
            || lse.Numel != logits.Dim(0) || dLosses.Numel != logits.Dim(0) || !dLogits.Shape.SameDims(logits.Shape))
            throw Unsupported("CrossEntropyBackward", logits, targets, lse, dLosses, dLogits);
        if (logits.Numel == 0) return;
        fixed (byte* px = RawBytes(logits), pt = RawBytes(targets), pe = RawBytes(lse), pd = RawBytes(dLosses), pdx = RawBytes(dLogits))
            Check(NativeMethods.sr_cross_entropy_backward_f32((float*)px, (int*)pt, (float*)pe, (float*)pd, (float*)pdx, logits.Dim(0),
                logits.Dim(1), ignoreIndex), "sr_cross_entropy_backward_f32");
    }
}
