using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

// Causal GQA FlashAttention: forward with online softmax, backward recomputing from lse.
public sealed partial class GpuBackend
{
    /// <summary>Dynamic shared memory a tile choice may use (the default 48 KiB per block).</summary>
    private const int SharedBudgetBytes = 48 * 1024;

    /// <summary>Threads per attention group.</summary>
    private int AttentionGroup => Math.Min(128, MaxGroup);

    /// <summary>Forward tiles (Br query rows, Bc keys): the widest query tile, then the widest key tile from min(Br, 32)
    /// down to Br/4, whose padded footprint fits the budget (64×16 at D = 64, 32×8 at D = 128); 4×2 on the CPU
    /// accelerator, so that small test shapes cross several query and key tiles.</summary>
    private (int Br, int Bc) ForwardTiles(int d)
    {
        if (_isCpu) return (4, 2);
        for (int br = 64; br >= 2; br /= 2)
            for (int bc = Math.Min(br, 32); bc >= Math.Max(1, br / 4); bc /= 2)
                if (AttentionParams.ForwardSharedFloats(br, bc, d) * sizeof(float) <= SharedBudgetBytes) return (br, bc);
        throw new NotSupportedException($"Attention: head dim {d} does not fit shared memory");
    }

    /// <summary>Checked shapes with query tile <paramref name="tile"/> and key tile <paramref name="keyTile"/> (0: the same).</summary>
    private static AttentionParams AttentionShape(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, int tile, double scale,
        long kvBatchStride = 0, int keyTile = 0)
    {
        if (q.Rank != 4 || k.Rank != 4 || v.Rank != 4)
            throw new TensorShapeException($"Attention: q {q.Shape}, k {k.Shape}, v {v.Shape} must be rank 4");
        int b = q.Dim(0), t = q.Dim(1), h = q.Dim(2), d = q.Dim(3), s = k.Dim(1), hkv = k.Dim(2);
        if (k.Dim(0) != b || k.Dim(3) != d || !k.Shape.SameDims(v.Shape) || hkv == 0 || h % hkv != 0 || !q.Shape.SameDims(o.Shape))
            throw new TensorShapeException($"Attention: q {q.Shape}, k {k.Shape}, v {v.Shape}, o {o.Shape}");
        if (keyMask is not null && keyMask.Numel != (long)b * s)
            throw new TensorShapeException($"Attention: key mask {keyMask.Shape} is not [B, S] = [{b}, {s}]");
        return new AttentionParams(b, t, s, h, hkv, d, tile, keyTile == 0 ? tile : keyTile, keyMask is not null, (float)scale, kvBatchStride);
    }

    /// <summary>k and v fp32, or both BF16 (a BF16 KV cache: read as stored and widened to fp32 in the kernels, which
    /// accumulate in fp32).</summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale)
    {
        int d = q.Dim(3);
        var (br, bc) = ForwardTiles(d);
        bool bf16Kv = KeyValueStorage(k, v) == DType.BF16;
        bool inPlace = k.Shape.IsPackedBelowFirstAxis && v.Shape.IsPackedBelowFirstAxis && k.Shape.FirstAxisStride == v.Shape.FirstAxisStride;
        long kvStride = inPlace ? k.Shape.FirstAxisStride : 0;
        var p = AttentionShape(q, k, v, keyMask, o, br, scale, kvStride, bc);
        if (q.Numel == 0) return;
        var kvType = bf16Kv ? DType.BF16 : DType.F32;
        using var sq = In(q);
        using var sk = new Staged(this, k, kvType, read: true, write: false, batchStrided: inPlace);
        using var sv = new Staged(this, v, kvType, read: true, write: false, batchStrided: inPlace);
        using var sm = keyMask is null ? null : In(keyMask);
        using var so = Out(o);
        using var sl = Out(lse);
        var mask = sm?.F32 ?? sq.F32;
        if (p.T == 1 && DecodeSplit(p, kvStride) is { } split)
        {
            DecodeAttention(q.Device, split, sq.F32, sk.Bytes, sv.Bytes, bf16Kv, mask, so.F32, sl.F32);
            return;
        }
        var config = new KernelConfig(new Index3D((p.T + br - 1) / br, p.H, p.B), new Index3D(AttentionGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(AttentionParams.ForwardSharedFloats(br, bc, p.D)));
        if (bf16Kv)
            _kernels.AttentionForwardBf16Kv.Value(config, sq.F32, sk.Bytes.Cast<ushort>(), sv.Bytes.Cast<ushort>(), mask, so.F32, sl.F32, p);
        else
            _kernels.AttentionForward.Value(config, sq.F32, sk.F32, sv.F32, mask, so.F32, sl.F32, p);
    }

    /// <summary>The storage of an attention's keys and values: F32 (any other compute type is staged as fp32), or BF16
    /// when both are BF16. Mixed storage is refused.</summary>
    private static DType KeyValueStorage(Tensor k, Tensor v)
    {
        bool kb = k.DType == DType.BF16, vb = v.DType == DType.BF16;
        if (kb != vb)
            throw new TensorDTypeException($"Attention: k {k.DType} {k.Shape} and v {v.DType} {v.Shape} must both be BF16 (a BF16 KV cache) or neither");
        return kb ? DType.BF16 : DType.F32;
    }

    /// <summary>Δ = rowsum(dO∘O), dQ cleared, then one pass over the key tiles (<see cref="AttentionKernels.Backward"/>): dK and
    /// dV per tile, dQ accumulated with atomics.</summary>
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale)
    {
        int d = q.Dim(3);
        var (br, bc) = BackwardTiles(d);
        var p = AttentionShape(q, k, v, keyMask, o, br, scale, keyTile: bc);
        RequireSameDims("AttentionBackward", q, dOut);
        RequireSameDims("AttentionBackward", q, dq);
        RequireSameDims("AttentionBackward", k, dk);
        RequireSameDims("AttentionBackward", v, dv);
        if (q.Numel == 0 && k.Numel == 0) return;
        if (KeyValueStorage(k, v) == DType.BF16)
            throw new TensorDTypeException("AttentionBackward: BF16 keys and values (a BF16 KV cache) serve inference only; training attention runs in fp32");
        using var sq = In(q);
        using var sk = In(k);
        using var sv = In(v);
        using var sm = keyMask is null ? null : In(keyMask);
        using var so = In(o);
        using var sl = In(lse);
        using var sdo = In(dOut);
        using var sdq = Out(dq);
        using var sdk = Out(dk);
        using var sdv = Out(dv);
        var mask = sm?.F32 ?? sq.F32;
        if (q.Numel > 0) MemsetZero(sdq.Bytes);   // the key tiles add into dQ
        if (k.Numel == 0) return;
        using var delta = Tensor.Uninitialized(q.Device, DType.F32, p.B, p.H, p.T);
        var deltaView = Raw(delta).Cast<float>();
        if (q.Numel > 0)
            _kernels.AttentionDelta.Value(Linear((long)p.B * p.T * p.H), so.F32, sdo.F32, deltaView, p);
        var config = new KernelConfig(new Index3D((p.S + bc - 1) / bc, p.Hkv, p.B), new Index3D(AttentionGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(AttentionParams.BackwardSharedFloats(br, bc, d)));
        _kernels.AttentionBackward.Value(config, sq.F32, sk.F32, sv.F32, mask, sl.F32, deltaView, sdo.F32, sdq.F32, sdk.F32, sdv.F32, p);
    }

    /// <summary>Backward tiles (Br query rows, Bc keys): the widest key tile ≤ 32, with the widest query tile from Bc down to
    /// Bc/4, whose padded footprint fits the budget (32×16 keys × queries at D = 64, 16×8 at D = 128); 2×4 on the CPU
    /// accelerator, so that small test shapes cross several key and query tiles.</summary>
    private (int Br, int Bc) BackwardTiles(int d)
    {
        if (_isCpu) return (4, 2);
        for (int bc = 32; bc >= 2; bc /= 2)
            for (int br = bc; br >= Math.Max(1, bc / 4); br /= 2)
                if (AttentionParams.BackwardSharedFloats(br, bc, d) * sizeof(float) <= SharedBudgetBytes) return (br, bc);
        throw new NotSupportedException($"AttentionBackward: head dim {d} does not fit shared memory");
    }
}
