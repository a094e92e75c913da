namespace SafeRlhf.Tensors;

// Causal scaled-dot-product attention with grouped-query heads and an optional key padding mask, as one
// fused op: the forward saves only the log-sum-exp; the backward recomputes the probabilities.
public static partial class Ops
{
    /// <summary>q [B, T, H, D]; k, v [B, S, Hkv, D] with H a multiple of Hkv; query t attends to keys
    /// 0 .. S − T + t (causal, aligned at the end, so S &gt; T serves KV-cache decoding); keyMask F32/F64
    /// [B, S] with 1 for real tokens and 0 for padding, or null. Returns [B, T, H, D]. k and v may both be BF16 (a BF16
    /// KV cache, <see cref="CheckKeyValues"/>): the backend widens them to fp32 and accumulates in fp32.</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask = null, double? scale = null)
    {
        bool records = Autograd.GradMode.IsEnabled && (q.RequiresGrad || k.RequiresGrad || v.RequiresGrad);
        CheckKeyValues(q, k, v, records);
        CheckRank("Attention", q, 4, "q [B, T, H, D]");
        CheckRank("Attention", k, 4, "k [B, S, Hkv, D]");
        if (!k.Shape.SameDims(v.Shape) || k.Dim(0) != q.Dim(0) || k.Dim(3) != q.Dim(3) || k.Dim(1) < q.Dim(1)
            || k.Dim(2) == 0 || q.Dim(2) % k.Dim(2) != 0)
            throw new TensorShapeException($"Attention: q {q.Shape}, k {k.Shape}, v {v.Shape} (need k = v = [B, S ≥ T, Hkv, D], H a multiple of Hkv)");
        if (keyMask is not null)
        {
            CheckSame("Attention", q, keyMask);
            if (keyMask.Rank != 2 || keyMask.Dim(0) != k.Dim(0) || keyMask.Dim(1) != k.Dim(1))
                throw new TensorShapeException($"Attention: keyMask {keyMask.Shape} must be [B, S] for k {k.Shape}");
        }
        double s = scale ?? 1.0 / Math.Sqrt(q.Dim(3));
        // Without gradients (decoding), a KV cache's filled part [B, S, Hkv, D] of [B, capacity, Hkv, D] is read in
        // place: backends take k and v whose batch entries are packed, at any (shared) batch stride.
        bool inPlace = !records && k.Shape.IsPackedBelowFirstAxis && v.Shape.IsPackedBelowFirstAxis
            && k.Shape.FirstAxisStride == v.Shape.FirstAxisStride;
        var qc = q.Contiguous();
        var kc = inPlace ? k.Detach() : k.Contiguous();
        var vc = inPlace ? v.Detach() : v.Contiguous();
        var mask = keyMask?.Contiguous();
        var o = OutputLike(q);
        var lse = Output(q.Device, q.DType, q.Dim(0), q.Dim(2), q.Dim(1));
        q.Backend.Attention(qc, kc, vc, mask, o, lse, s);
        var result = Record("Attention", o, [q, k, v], mask is null ? [qc, kc, vc, o, lse] : [qc, kc, vc, mask, o, lse], dOut =>
        {
            var dq = OutputLike(qc);
            var dk = OutputLike(kc);
            var dv = OutputLike(vc);
            q.Backend.AttentionBackward(qc, kc, vc, mask, o, lse, dOut.Contiguous(), dq, dk, dv, s);
            return [dq, dk, dv];
        });
        return Finish(result, qc, kc, vc, mask, lse);
    }

    /// <summary>k and v of q's dtype, or both BF16 (the storage of a BF16 KV cache) under an fp32/fp64 q when no gradient
    /// is recorded: BF16 keys and values serve generation, not training.</summary>
    private static void CheckKeyValues(Tensor q, Tensor k, Tensor v, bool records)
    {
        if (k.DType != DType.BF16 && v.DType != DType.BF16)
        {
            CheckSame("Attention", q, k);
            CheckSame("Attention", q, v);
            return;
        }
        CheckCompute("Attention", q);
        k.ThrowIfDisposed("Attention");
        v.ThrowIfDisposed("Attention");
        if (k.DType != v.DType)
            throw new TensorDTypeException($"Attention: k {k.DType} {k.Shape} and v {v.DType} {v.Shape} must both be BF16 (a BF16 KV cache) or both {q.DType}");
        if (k.Device != q.Device || v.Device != q.Device)
            throw new ArgumentException($"Attention: tensors on different devices ({q.Device.Name}, {k.Device.Name}, {v.Device.Name})");
        if (records)
            throw new TensorDTypeException("Attention: BF16 keys and values (a BF16 KV cache) serve inference only, but a gradient is being recorded " +
                                           $"(q {q.DType} {q.Shape}, k {k.DType} {k.Shape})");
    }
}
