using ILGPU;

namespace SafeRlhf.Kernels;

/// <summary>Gather/scatter-add along one axis, iterating over the index tensor's elements k.
/// XBase maps k to x's storage offset with the gathered axis' stride zeroed; the index value j then adds
/// j·AxisStride. Index and Y (or dY) map k to their own storage.</summary>
public readonly struct GatherParams
{
    public readonly long Count;
    public readonly int Extent;
    public readonly long AxisStride;
    public readonly int XType, YType;
    public readonly StridedLayout XBase, Index, Y;

    public GatherParams(long count, int extent, long axisStride, int xType, int yType, StridedLayout xBase, StridedLayout index, StridedLayout y)
    {
        Count = count; Extent = extent; AxisStride = axisStride; XType = xType; YType = yType; XBase = xBase; Index = index; Y = y;
    }
}

/// <summary>Gather (embedding lookup) and its backward, scatter-add with fp32 atomics. An index outside
/// [0, Extent) writes error[0] = 1 and error[1] = the index, and the element is skipped.</summary>
public static class GatherKernels
{
    [Kernel]
    public static void Gather(ArrayView<byte> x, ArrayView<int> index, ArrayView<byte> y, ArrayView<int> error, GatherParams p)
    {
        for (long k = DeviceMath.GlobalIndex; k < p.Count; k += DeviceMath.GridStride)
        {
            int j = index[p.Index.At(k)];
            if (!InRange(j, p.Extent, error)) continue;
            DeviceMath.CopyElement(x, p.XType, p.XBase.At(k) + j * p.AxisStride, y, p.YType, p.Y.At(k));
        }
    }

    /// <summary>dx[.., index[k], ..] += dy[k]; dx is fp32 (atomic adds), dy any element type.</summary>
    [Kernel]
    public static void ScatterAdd(ArrayView<byte> dy, ArrayView<int> index, ArrayView<float> dx, ArrayView<int> error, GatherParams p)
    {
        for (long k = DeviceMath.GlobalIndex; k < p.Count; k += DeviceMath.GridStride)
        {
            int j = index[p.Index.At(k)];
            if (!InRange(j, p.Extent, error)) continue;
            float v = DeviceMath.Load(dy, p.YType, p.Y.At(k));
            Atomic.Add(ref dx[p.XBase.At(k) + j * p.AxisStride], v);
        }
    }

    /// <summary>True when j is in [0, extent); otherwise flags it (error[0] = 1, error[1] = j).</summary>
    private static bool InRange(int j, int extent, ArrayView<int> error)
    {
        if (j >= 0 && j < extent) return true;
        error[0] = 1;
        error[1] = j;
        return false;
    }
}
