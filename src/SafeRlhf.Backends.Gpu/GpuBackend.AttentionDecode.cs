using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

// Split-KV attention for one query token: partial softmax per key range, then a log-sum-exp combine.
public sealed partial class GpuBackend
{
    /// <summary>The decode shape for a T = 1 attention, or null when splitting the keys does not pay (fewer than two
    /// ranges). Rows per group: the query heads of one KV head, at most 8 (4 on the CPU accelerator); key tile: the
    /// widest ≤ 32 that fits the budget (4 on the CPU accelerator). On a GPU the keys are split until the grid has
    /// about two groups per multiprocessor, each range keeping at least <see cref="MinDecodeSplitKeys"/> keys; on the
    /// CPU accelerator every range holds two key tiles, so that small test shapes cross several ranges.</summary>
    private AttentionParams? DecodeSplit(AttentionParams p, long kvBatchStride)
    {
        int rep = p.H / p.Hkv;
        int br = Math.Min(rep, _isCpu ? 4 : 8);
        int bc = _isCpu ? 4 : 32;
        while (bc > 1 && AttentionParams.ForwardSharedFloats(br, bc, p.D) * sizeof(float) > SharedBudgetBytes) bc /= 2;
        if (AttentionParams.ForwardSharedFloats(br, bc, p.D) * sizeof(float) > SharedBudgetBytes) return null;
        int splitKeys;
        if (_isCpu) splitKeys = 2 * bc;
        else
        {
            long groups = (long)p.B * p.Hkv * ((rep + br - 1) / br);
            long wanted = Math.Max(1, 2L * _accelerator.NumMultiprocessors / groups);
            int perSplit = (int)Math.Max(MinDecodeSplitKeys, (p.S + wanted - 1) / wanted);
            splitKeys = (perSplit + bc - 1) / bc * bc;
        }
        if (p.S <= splitKeys) return null;
        return new AttentionParams(p.B, 1, p.S, p.H, p.Hkv, p.D, br, bc, p.HasMask != 0, p.Scale, kvBatchStride, splitKeys);
    }

    /// <summary>Keys a decode range holds at least on a GPU: below this the second launch and the partials' round trip
    /// cost more than the parallelism gains.</summary>
    private const int MinDecodeSplitKeys = 128;

    /// <summary>Two launches: <see cref="AttentionKernels.DecodePartial"/> into pooled partials, then
    /// <see cref="AttentionKernels.DecodeCombine"/> into o [B, 1, H, D] and lse [B, H, 1]. k and v are fp32, or BF16 when
    /// <paramref name="bf16Kv"/> (<see cref="AttentionKernels.DecodePartialBf16Kv"/>).</summary>
    private void DecodeAttention(SafeRlhf.Tensors.Device device, AttentionParams p, ArrayView<float> q, ArrayView<byte> k, ArrayView<byte> v,
        bool bf16Kv, ArrayView<float> mask, ArrayView<float> o, ArrayView<float> lse)
    {
        int splits = p.Splits, rep = p.H / p.Hkv, rowGroups = (rep + p.Br - 1) / p.Br;
        // every partial is written by exactly one group (rows past the last head of a row group are not stored)
        using var oPart = Tensor.Uninitialized(device, DType.F32, p.B, p.H, splits, p.D);
        using var lsePart = Tensor.Uninitialized(device, DType.F32, p.B, p.H, splits);
        var oView = Raw(oPart).Cast<float>();
        var lseView = Raw(lsePart).Cast<float>();
        var config = new KernelConfig(new Index3D(splits, p.Hkv * rowGroups, p.B), new Index3D(AttentionGroup, 1, 1),
            SharedMemoryConfig.RequestDynamic<float>(AttentionParams.ForwardSharedFloats(p.Br, p.Bc, p.D)));
        if (bf16Kv)
            _kernels.AttentionDecodePartialBf16Kv.Value(config, q, k.Cast<ushort>(), v.Cast<ushort>(), mask, oView, lseView, p);
        else
            _kernels.AttentionDecodePartial.Value(config, q, k.Cast<float>(), v.Cast<float>(), mask, oView, lseView, p);
        _kernels.AttentionDecodeCombine.Value(Linear((long)p.B * p.H * p.D), oView, lseView, o, lse, p);
    }
}
