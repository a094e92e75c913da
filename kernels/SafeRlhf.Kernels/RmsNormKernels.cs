using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>RMSNorm over the last axis of contiguous [Rows, Cols] fp32 data: y = x·rstd·w with
/// rstd = (mean(x²) + eps)^(−1/2). One group per row; dynamic shared memory: warpSize floats.</summary>
public static class RmsNormKernels
{
    /// <summary>y [Rows, Cols], rstd [Rows] from x [Rows, Cols] and w [Cols].</summary>
    [Kernel]
    public static void Forward(ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, ArrayView<float> rstd, RowParams p)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        for (int r = Grid.IdxX; r < p.Rows; r += Grid.DimX)
        {
            long row = (long)r * p.Cols;
            float ss = 0f;
            for (int i = Group.IdxX; i < p.Cols; i += Group.DimX) ss += x[row + i] * x[row + i];
            ss = DeviceMath.GroupSum(ss, scratch);
            float rs = 1f / XMath.Sqrt(ss / p.Cols + p.Eps);
            if (Group.IdxX == 0) rstd[r] = rs;
            for (int i = Group.IdxX; i < p.Cols; i += Group.DimX) y[row + i] = x[row + i] * rs * w[i];
        }
    }

    /// <summary>dx = rstd·w·dy − x·rstd³·Σ(w·dy·x)/Cols, one group per row.</summary>
    [Kernel]
    public static void BackwardInput(ArrayView<float> x, ArrayView<float> w, ArrayView<float> rstd, ArrayView<float> dy,
        ArrayView<float> dx, RowParams p)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        for (int r = Grid.IdxX; r < p.Rows; r += Grid.DimX)
        {
            long row = (long)r * p.Cols;
            float dot = 0f;
            for (int i = Group.IdxX; i < p.Cols; i += Group.DimX) dot += w[i] * dy[row + i] * x[row + i];
            dot = DeviceMath.GroupSum(dot, scratch);
            float rs = rstd[r];
            float c = rs * rs * rs * dot / p.Cols;
            for (int i = Group.IdxX; i < p.Cols; i += Group.DimX)
                dx[row + i] = rs * w[i] * dy[row + i] - x[row + i] * c;
        }
    }

    /// <summary>dw[i] += Σ_r dy[r, i]·x[r, i]·rstd[r]; one thread per column (coalesced across threads),
    /// deterministic (no atomics).</summary>
    [Kernel]
    public static void BackwardWeight(ArrayView<float> x, ArrayView<float> rstd, ArrayView<float> dy, ArrayView<float> dw,
        RowParams p)
    {
        for (long i = DeviceMath.GlobalIndex; i < p.Cols; i += DeviceMath.GridStride)
        {
            float acc = 0f;
            for (int r = 0; r < p.Rows; r++)
            {
                long at = (long)r * p.Cols + i;
                acc += dy[at] * x[at] * rstd[r];
            }
            dw[i] += acc;
        }
    }
}
