using ILGPU;

namespace SafeRlhf.Kernels;

/// <summary>Batched GEMM parameters: c[b] (+)= A[b] · B[b] with A logical [M, K] and B logical [K, N], every
/// operand addressed by element strides (a transposed operand is just swapped strides; a broadcast batch
/// has batch stride 0).</summary>
public readonly struct GemmParams
{
    public readonly int M, N, K, Batch;
    public readonly long AOffset, ABatch, ARow, ACol;
    public readonly long BOffset, BBatch, BRow, BCol;
    public readonly long COffset, CBatch, CRow, CCol;
    public readonly int Accumulate;

    public GemmParams(int m, int n, int k, int batch,
        long aOffset, long aBatch, long aRow, long aCol,
        long bOffset, long bBatch, long bRow, long bCol,
        long cOffset, long cBatch, long cRow, long cCol, bool accumulate)
    {
        M = m; N = n; K = k; Batch = batch;
        AOffset = aOffset; ABatch = aBatch; ARow = aRow; ACol = aCol;
        BOffset = bOffset; BBatch = bBatch; BRow = bRow; BCol = bCol;
        COffset = cOffset; CBatch = cBatch; CRow = cRow; CCol = cCol;
        Accumulate = accumulate ? 1 : 0;
    }
}

/// <summary>Four fp32 accumulators of one output row of a thread's 4×4 micro-tile.</summary>
public struct Acc4
{
    public float X, Y, Z, W;

    public void Fma(float a, float b0, float b1, float b2, float b3)
    {
        X += a * b0; Y += a * b1; Z += a * b2; W += a * b3;
    }

    public readonly float Get(int j) => j == 0 ? X : j == 1 ? Y : j == 2 ? Z : W;
}

/// <summary>A thread's 4×4 register tile of C: rows row + i·g and columns col + j·g (i, j &lt; 4) of its group's
/// (4g)×(4g) tile. Shared by the fp32 and the quantized GEMM.</summary>
public struct Tile4x4
{
    public Acc4 R0, R1, R2, R3;

    /// <summary>Adds one depth block of g: aTile [g, 4g] (depth-major) times bTile [g, 4g], for this thread's rows
    /// ty + i·g and columns tx + j·g.</summary>
    public void MultiplyAdd(ArrayView<float> aTile, ArrayView<float> bTile, int tile, int g, int ty, int tx)
    {
        for (int kk = 0; kk < g; kk++)
        {
            int ab = kk * tile + ty;
            int bb = kk * tile + tx;
            float b0 = bTile[bb], b1 = bTile[bb + g], b2 = bTile[bb + 2 * g], b3 = bTile[bb + 3 * g];
            R0.Fma(aTile[ab], b0, b1, b2, b3);
            R1.Fma(aTile[ab + g], b0, b1, b2, b3);
            R2.Fma(aTile[ab + 2 * g], b0, b1, b2, b3);
            R3.Fma(aTile[ab + 3 * g], b0, b1, b2, b3);
        }
    }

    /// <summary>Writes (or adds, with p.Accumulate) the 4×4 values into C.</summary>
    public readonly void Store(ArrayView<float> c, GemmParams p, long cBase, int row, int col, int g)
    {
        MatMulKernels.StoreRow(c, p, cBase, row, col, g, R0);
        MatMulKernels.StoreRow(c, p, cBase, row + g, col, g, R1);
        MatMulKernels.StoreRow(c, p, cBase, row + 2 * g, col, g, R2);
        MatMulKernels.StoreRow(c, p, cBase, row + 3 * g, col, g, R3);
    }
}

/// <summary>Tiled fp32 GEMM. A 2-D group of g×g threads computes a (4g)×(4g) tile of C; each thread owns a
/// 4×4 micro-tile strided by g (rows ty + i·g, columns tx + j·g) so that shared-memory reads and global
/// writes are coalesced across tx. K advances in steps of g; A and B tiles are staged in dynamic shared
/// memory (4g·g floats each). Grid: (⌈N/4g⌉, ⌈M/4g⌉, batch).</summary>
public static class MatMulKernels
{
    [Kernel]
    public static void Gemm(ArrayView<float> a, ArrayView<float> b, ArrayView<float> c, GemmParams p)
    {
        int g = Group.DimX;
        int tile = 4 * g;
        var shared = SharedMemory.GetDynamic<float>();
        var aTile = shared.SubView(0, tile * g);         // [kk, row]
        var bTile = shared.SubView(tile * g, tile * g);  // [kk, col]
        int tx = Group.IdxX, ty = Group.IdxY, tid = ty * g + tx, threads = g * g;
        int col0 = Grid.IdxX * tile, row0 = Grid.IdxY * tile, batch = Grid.IdxZ;
        long aBase = p.AOffset + batch * p.ABatch, bBase = p.BOffset + batch * p.BBatch;

        var acc = new Tile4x4();
        for (int k0 = 0; k0 < p.K; k0 += g)
        {
            for (int e = tid; e < tile * g; e += threads)
            {
                // A tile element (row r, depth kk); B tile element (depth kk, column cc)
                int kk = e % g, r = e / g;
                int row = row0 + r, k = k0 + kk;
                aTile[kk * tile + r] = row < p.M && k < p.K ? a[aBase + row * p.ARow + k * p.ACol] : 0f;
                int cc = e % tile, kb = e / tile;
                int col = col0 + cc, kB = k0 + kb;
                bTile[kb * tile + cc] = col < p.N && kB < p.K ? b[bBase + kB * p.BRow + col * p.BCol] : 0f;
            }
            Group.Barrier();
            acc.MultiplyAdd(aTile, bTile, tile, g, ty, tx);
            Group.Barrier();
        }
        long cBase = p.COffset + batch * p.CBatch;
        acc.Store(c, p, cBase, row0 + ty, col0 + tx, g);
    }

    public static void StoreRow(ArrayView<float> c, GemmParams p, long cBase, int row, int col, int g, Acc4 acc)
    {
        if (row >= p.M) return;
        for (int j = 0; j < 4; j++)
        {
            int cc = col + j * g;
            if (cc >= p.N) return;
            long at = cBase + row * p.CRow + cc * p.CCol;
            float v = acc.Get(j);
            c[at] = p.Accumulate != 0 ? c[at] + v : v;
        }
    }
}
