using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Nn;

/// <summary>The data-parallel half of AdamW: summing gradients over ranks and, when the optimizer state is sharded
/// (ZeRO stage 1), moving shards of the flattened parameters [TotalElements] between ranks through host buffers.</summary>
public sealed partial class AdamW
{
    /// <summary>Sums every trained parameter's gradient over the ranks (each rank's loss being its share of the
    /// global loss). Sharded, each rank receives only its shard of the sum (reduce-scatter); the rest of its gradients
    /// is left as computed and not used. All ranks must hold gradients for the same parameters. One rank: nothing.</summary>
    public void ReduceGradients()
    {
        if (_dp.Comm.WorldSize == 1) return;
        if (Sharded) { ReduceScatterGradients(); return; }
        _dp.Comm.AllReduceSum(_slots.Where(s => s.Param.Grad is not null).Select(s => s.Param.Grad!).ToList(), _dp.BucketBytes);
    }

    private void ReduceScatterGradients()
    {
        int n = _dp.Comm.WorldSize;
        long per = (TotalElements + n - 1) / n;
        var flat = new float[checked((int)(per * n))];
        long at = 0;
        foreach (var s in _slots)
        {
            var g = s.Param.Grad ?? throw new InvalidOperationException($"ReduceGradients: parameter '{s.Name}' has no gradient; a sharded optimizer needs every one");
            ReadFloats(g, 0, flat.AsSpan(checked((int)at), checked((int)g.Numel)));
            at += g.Numel;
        }
        var mine = new float[per];
        _dp.Comm.ReduceScatterSum<float>(flat, mine);
        long offset = 0;
        foreach (var s in _slots)
        {
            if (s.Length > 0) WriteFloats(s.Param.Grad!, s.Start, mine.AsSpan(checked((int)offset), checked((int)s.Length)));
            offset += s.Length;
        }
    }

    /// <summary>Every rank's updated shard of the parameters, all-gathered into every parameter.</summary>
    private void GatherParameters()
    {
        var all = GatherShards(s => s.Param, s => s.Start);
        long at = 0;
        foreach (var s in _slots)
        {
            WriteFloats(s.Param, 0, all.AsSpan(checked((int)at), checked((int)s.Param.Numel)));
            at += s.Param.Numel;
        }
    }

    /// <summary>The whole moments, parameter-shaped, gathered from every rank's shard (tensors owned by the
    /// caller's scope).</summary>
    private List<(string Name, Tensor M, Tensor V)> GatherMoments()
    {
        var m = GatherShards(s => s.M!, _ => 0);
        var v = GatherShards(s => s.V!, _ => 0);
        var result = new List<(string, Tensor, Tensor)>();
        long at = 0;
        foreach (var s in _slots)
        {
            int[] dims = s.Param.Shape.ToArray();
            var span = new Range(checked((int)at), checked((int)(at + s.Param.Numel)));
            result.Add((s.Name, Tensor.FromArray<float>(s.Param.Device, m.AsSpan(span), dims), Tensor.FromArray<float>(s.Param.Device, v.AsSpan(span), dims)));
            at += s.Param.Numel;
        }
        return result;
    }

    /// <summary>Packs this rank's shard (for each slot, <paramref name="source"/>'s elements from
    /// <paramref name="start"/>, Length of them) and all-gathers the shards: the flattened whole [TotalElements].</summary>
    private float[] GatherShards(Func<Slot, Tensor> source, Func<Slot, long> start)
    {
        int n = _dp.Comm.WorldSize;
        long per = (TotalElements + n - 1) / n;
        var mine = new float[per];
        long at = 0;
        foreach (var s in _slots)
        {
            if (s.Length > 0) ReadFloats(source(s), start(s), mine.AsSpan(checked((int)at), checked((int)s.Length)));
            at += s.Length;
        }
        var all = new float[checked((int)(per * n))];
        _dp.Comm.AllGather<float>(mine, all);
        return all;
    }

    private static void ReadFloats(Tensor t, long start, Span<float> dst)
    {
        CheckHostCopy(t);
        t.Backend.Read(t.Storage, t.DType.ByteCount(t.Offset + start), MemoryMarshal.AsBytes(dst));
    }

    private static void WriteFloats(Tensor t, long start, ReadOnlySpan<float> src)
    {
        CheckHostCopy(t);
        t.Backend.Write(t.Storage, t.DType.ByteCount(t.Offset + start), MemoryMarshal.AsBytes(src));
    }

    private static void CheckHostCopy(Tensor t)
    {
        if (t.DType != DType.F32 || !t.IsContiguous)
            throw new NotSupportedException($"sharded AdamW moves contiguous F32 tensors only, not {t}");
    }
}
