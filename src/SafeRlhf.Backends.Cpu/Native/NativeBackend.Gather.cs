using CommunityToolkit.HighPerformance.Buffers;
using SafeRlhf.Tensors;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace SafeRlhf.Backends.Cpu.Native;

// Gather along an axis and its backward, scatter-add. The embedding lookup is the hot case: its index repeats one id
// along a whole row, so a row is copied (or added) with one vectorised call; other index patterns go element by element.
public sealed partial class NativeBackend
{
    /// <summary>The layout both ops share: x (or dx) [outer, extent, inner] and index (or y, dy) [outer, count, inner], with
    /// the axis normalised.</summary>
    private static (long Outer, int Extent, int Count, int Inner, int Axis) GatherLayout(string op, Tensor x, Tensor index, Tensor y, int axis)
    {
        axis = x.Rank == 0 ? axis : x.Shape.NormalizeAxis(axis);
        RequireF32(op, x, y);
        if (!IsIndex(index)) throw Unsupported(op, index);
        if (x.Rank == 0 || index.Rank != x.Rank || !y.Shape.SameDims(index.Shape))
            throw new TensorShapeException($"{op}: x {x.Shape}, index {index.Shape}, values {y.Shape} (need index and values of x's rank, equal dims)");
        for (int a = 0; a < x.Rank; a++)
            if (a != axis && index.Dim(a) != x.Dim(a))
                throw new TensorShapeException($"{op}: index {index.Shape} and x {x.Shape} differ on axis {a}");
        long outer = 1, inner = 1;
        for (int a = 0; a < axis; a++) outer *= x.Dim(a);
        for (int a = axis + 1; a < x.Rank; a++) inner *= x.Dim(a);
        return (outer, x.Dim(axis), index.Dim(axis), checked((int)inner), axis);
    }

    /// <summary>True when a run of ids along the inner axes repeats one id (the embedding lookup): it moves as one row.</summary>
    private static bool RepeatsOneId(ReadOnlySpan<int> ids) => ids.Length > 0 && ids.IndexOfAnyExcept(ids[0]) < 0;

    private static Span<int> Indices(Tensor index) =>
        ((CpuStorage)index.Storage).As<int>().Slice(checked((int)index.Offset), checked((int)index.Numel));

    private static int CheckedIndex(string op, int value, int extent, int axis, Tensor x) =>
        value >= 0 && value < extent ? value
            : throw new TensorIndexException($"{op}: index {value} out of range [0, {extent}) on axis {axis} of {x.Shape}");

    public void Gather(Tensor x, Tensor index, Tensor y, int axis)
    {
        (var outer, var extent, var count, var inner, axis) = GatherLayout("Gather", x, index, y, axis);
        var xs = Floats(x);
        var ys = Floats(y);
        var idx = Indices(index);
        for (long o = 0; o < outer; o++)
            for (int j = 0; j < count; j++)
            {
                int k = checked((int)((o * count + j) * inner));
                var ids = idx.Slice(k, inner);
                var dst = ys.Slice(k, inner);
                if (RepeatsOneId(ids))
                {
                    int v = CheckedIndex("Gather", ids[0], extent, axis, x);
                    xs.Slice(checked((int)((o * extent + v) * inner)), inner).CopyTo(dst);
                    continue;
                }
                for (int i = 0; i < inner; i++)
                    dst[i] = xs[checked((int)((o * extent + CheckedIndex("Gather", ids[i], extent, axis, x)) * inner + i))];
            }
    }

    /// <summary>dx[.., index, ..] += dy, each target accumulated in double in index order and rounded once, as the reference
    /// does. When every run along the inner axes repeats one id (the embedding gradient), whole rows are added as vectors.</summary>
    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis)
    {
        (var outer, var extent, var count, var inner, axis) = GatherLayout("ScatterAdd", dx, index, dy, axis);
        var g = Floats(dy);
        var d = Floats(dx);
        var idx = Indices(index);
        bool rowsOnly = inner > 0;
        for (int k = 0; rowsOnly && k < idx.Length; k += inner)
            rowsOnly = RepeatsOneId(idx.Slice(k, inner));
        if (rowsOnly) ScatterAddRows(g, idx, d, outer, extent, count, inner, axis, dx);
        else ScatterAddElements(g, idx, d, outer, extent, count, inner, axis, dx);
    }

    private static void ScatterAddRows(Span<float> g, Span<int> idx, Span<float> d, long outer, int extent, int count, int inner,
        int axis, Tensor dx)
    {
        var sums = new Dictionary<long, double[]>();          // target row start → its running sum
        using var wide = MemoryOwner<double>.Allocate(inner);
        for (long o = 0; o < outer; o++)
            for (int j = 0; j < count; j++)
            {
                int k = checked((int)((o * count + j) * inner));
                long start = (o * extent + CheckedIndex("ScatterAdd", idx[k], extent, axis, dx)) * inner;
                if (!sums.TryGetValue(start, out var sum))
                {
                    sums[start] = sum = new double[inner];
                    TP.ConvertTruncating<float, double>(d.Slice(checked((int)start), inner), sum);
                }
                TP.ConvertTruncating<float, double>(g.Slice(k, inner), wide.Span);
                TP.Add(sum, wide.Span, sum);
            }
        foreach (var (start, sum) in sums) TP.ConvertTruncating<double, float>(sum, d.Slice(checked((int)start), inner));
    }

    private static void ScatterAddElements(Span<float> g, Span<int> idx, Span<float> d, long outer, int extent, int count, int inner,
        int axis, Tensor dx)
    {
        var sums = new Dictionary<long, double>();            // target element → its running sum
        for (long o = 0; o < outer; o++)
            for (int j = 0; j < count; j++)
                for (int i = 0; i < inner; i++)
                {
                    int k = checked((int)((o * count + j) * inner + i));
                    long at = (o * extent + CheckedIndex("ScatterAdd", idx[k], extent, axis, dx)) * inner + i;
                    sums[at] = sums.GetValueOrDefault(at, d[checked((int)at)]) + g[k];
                }
        foreach (var (at, sum) in sums) d[checked((int)at)] = (float)sum;
    }
}
