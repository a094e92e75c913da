using ILGPU;
using ILGPU.Algorithms;

namespace SafeRlhf.Kernels;

/// <summary>Quantized block format codes.</summary>
public static class QuantCode
{
    public const int Q8_0 = 0;
    public const int Q4_0 = 1;
    public const int Q4_K = 2;
    public const int Q5_K = 3;
    public const int Q6_K = 4;
    public const int Q8_0BlockBytes = 34;
    public const int Q4_0BlockBytes = 18;

    /// <summary>Bytes of a 256-weight super-block of a K-quant kind.</summary>
    public static int KBlockBytes(int kind) => kind == Q4_K ? 144 : kind == Q5_K ? 176 : 210;
}

public readonly struct QuantGemvParams
{
    /// <summary>Most activation rows one <see cref="QuantizedMatMulKernels.Gemv"/> launch takes (the GEMM takes 16 or more).</summary>
    public const int MaxRows = 15;

    /// <summary>Floats of dynamic shared memory <see cref="QuantizedMatMulKernels.Gemv"/> needs for a group of
    /// <paramref name="group"/> threads: a 32-weight decoded slice per thread (padded to 33 floats so that the slices
    /// fall in distinct banks), <see cref="MaxRows"/> row sums per thread, and the group reduction's scratch.</summary>
    public static int SharedFloats(int group) => group * (33 + MaxRows + 1);

    /// <summary>x [N, K] with N ≤ <see cref="MaxRows"/>, w [M, K] quantized, y [N, M].</summary>
    public readonly int N, M, K, Kind;

    public QuantGemvParams(int n, int m, int k, int kind)
    {
        N = n; M = m; K = k; Kind = kind;
    }
}

public readonly struct QuantizeParams
{
    public readonly long Blocks;
    public readonly int Kind;

    public QuantizeParams(long blocks, int kind)
    {
        Blocks = blocks; Kind = kind;
    }
}

/// <summary>Matrix products against ggml Q8_0/Q4_0 and K-quant (Q4_K, Q5_K, Q6_K) weights, plus quantize (Q8_0/Q4_0)
/// and dequantize. Blocks are read byte-wise (34- and 18-byte blocks are not word aligned); the fp16 block scale is
/// decoded in-kernel.</summary>
public static class QuantizedMatMulKernels
{
    /// <summary>Weight element <paramref name="e"/> (row-major over the logical [M, K] weight) dequantized.</summary>
    public static float Dequant(ArrayView<byte> w, int kind, long e)
    {
        if (kind >= QuantCode.Q4_K) return KQuantDecode.Element(w, kind, (e >> 8) * QuantCode.KBlockBytes(kind), (int)(e & 255));
        long block = e >> 5;
        int i = (int)(e & 31);
        if (kind == QuantCode.Q8_0)
        {
            long at = block * QuantCode.Q8_0BlockBytes;
            return DeviceMath.LoadHalfBytes(w, at) * (sbyte)w[at + 2 + i];
        }
        long bt = block * QuantCode.Q4_0BlockBytes;
        int packed = w[bt + 2 + (i & 15)];
        int nibble = i < 16 ? packed & 0x0F : packed >> 4;
        return DeviceMath.LoadHalfBytes(w, bt) * (nibble - 8);
    }

    /// <summary>Tiled GEMM whose B operand is a quantized weight, dequantized while staging each tile in
    /// shared memory: c[n, j] (+)= Σ_kk a[n, kk] · W(kk, j), where W(kk, j) is weight element
    /// BOffset + kk·BRow + j·BCol. Forward y = x·Wᵀ uses BRow = 1, BCol = K; backward dx = dy·W uses
    /// BRow = K, BCol = 1. Same tiling and launch shape as <see cref="MatMulKernels.Gemm"/>.</summary>
    [Kernel]
    public static void Gemm(ArrayView<float> a, ArrayView<byte> w, ArrayView<float> c, GemmParams p, int kind)
    {
        int g = Group.DimX;
        int tile = 4 * g;
        var shared = SharedMemory.GetDynamic<float>();
        var aTile = shared.SubView(0, tile * g);
        var bTile = shared.SubView(tile * g, tile * g);
        int tx = Group.IdxX, ty = Group.IdxY, tid = ty * g + tx, threads = g * g;
        int col0 = Grid.IdxX * tile, row0 = Grid.IdxY * tile;

        var acc = new Tile4x4();
        for (int k0 = 0; k0 < p.K; k0 += g)
        {
            for (int e = tid; e < tile * g; e += threads)
            {
                int kk = e % g, r = e / g;
                int row = row0 + r, k = k0 + kk;
                aTile[kk * tile + r] = row < p.M && k < p.K ? a[p.AOffset + row * p.ARow + k * p.ACol] : 0f;
                int cc = e % tile, kb = e / tile;
                int col = col0 + cc, kB = k0 + kb;
                bTile[kb * tile + cc] = col < p.N && kB < p.K ? Dequant(w, kind, p.BOffset + kB * p.BRow + col * p.BCol) : 0f;
            }
            Group.Barrier();
            acc.MultiplyAdd(aTile, bTile, tile, g, ty, tx);
            Group.Barrier();
        }
        acc.Store(c, p, p.COffset, row0 + ty, col0 + tx, g);
    }

    /// <summary>The 32 weights from element <paramref name="e0"/> (a multiple of 32) into <paramref name="dst"/>, each
    /// exactly as <see cref="Dequant"/> gives it: Q8_0/Q4_0 decode the block's fp16 scale once and the quants byte by
    /// byte; a K-quant's 32 weights are one sub-block of a super-block, decoded element by element.</summary>
    public static void DecodeGroup(ArrayView<byte> w, int kind, long e0, ArrayView<float> dst)
    {
        if (kind >= QuantCode.Q4_K)
        {
            long at = (e0 >> 8) * QuantCode.KBlockBytes(kind);
            int first = (int)(e0 & 255);
            for (int i = 0; i < 32; i++) dst[i] = KQuantDecode.Element(w, kind, at, first + i);
            return;
        }
        long block = e0 >> 5;
        if (kind == QuantCode.Q8_0)
        {
            long at = block * QuantCode.Q8_0BlockBytes;
            float d = DeviceMath.LoadHalfBytes(w, at);
            for (int i = 0; i < 32; i++) dst[i] = d * (sbyte)w[at + 2 + i];
            return;
        }
        long bt = block * QuantCode.Q4_0BlockBytes;
        float d4 = DeviceMath.LoadHalfBytes(w, bt);
        for (int i = 0; i < 16; i++)
        {
            int packed = w[bt + 2 + i];
            dst[i] = d4 * ((packed & 0x0F) - 8);
            dst[i + 16] = d4 * ((packed >> 4) - 8);
        }
    }

    /// <summary>Batched decode path y [N, M] = x [N, K] · wᵀ for N ≤ <see cref="QuantGemvParams.MaxRows"/>: one group
    /// per weight row (grid-stride over rows); each thread decodes a 32-weight group once into its own shared-memory
    /// slice (the fp16 scale once per block) and applies it to every x row, keeping one running sum per row in shared
    /// memory (updated once per 32 products). Dynamic shared memory: <see cref="QuantGemvParams.SharedFloats"/>.</summary>
    [Kernel]
    public static void Gemv(ArrayView<float> x, ArrayView<byte> w, ArrayView<float> y, QuantGemvParams p)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int g = Group.DimX, t = Group.IdxX;
        var decoded = shared.SubView(t * 33, 32);
        var sums = shared.SubView(g * 33, g * QuantGemvParams.MaxRows);
        var scratch = shared.SubView(g * (33 + QuantGemvParams.MaxRows), g);
        int groups = p.K / 32;
        for (int m = Grid.IdxX; m < p.M; m += Grid.DimX)
        {
            for (int r = 0; r < p.N; r++) sums[r * g + t] = 0f;
            for (int grp = t; grp < groups; grp += g)
            {
                int k0 = grp * 32;
                DecodeGroup(w, p.Kind, (long)m * p.K + k0, decoded);
                for (int r = 0; r < p.N; r++)
                {
                    long xr = (long)r * p.K + k0;
                    float s = 0f;
                    for (int i = 0; i < 32; i++) s += decoded[i] * x[xr + i];
                    sums[r * g + t] += s;
                }
            }
            for (int r = 0; r < p.N; r++)
            {
                float total = DeviceMath.GroupSum(sums[r * g + t], scratch);
                if (t == 0) y[(long)r * p.M + m] = total;
            }
        }
    }

    /// <summary>A block's scale d as fp16, little-endian, at q[at].</summary>
    private static void StoreScale(ArrayView<byte> q, long at, float d)
    {
        int h = DeviceMath.FloatToHalf(d);
        q[at] = (byte)(h & 0xFF);
        q[at + 1] = (byte)(h >> 8);
    }

    /// <summary>One thread per block: q = quantize(x) with ggml's rounding (Q8_0: d = amax/127, round half away
    /// from zero; Q4_0: d = max/−8 with the sign of the largest-magnitude element, q = min(15, ⌊x/d + 8.5⌋)).</summary>
    [Kernel]
    public static void Quantize(ArrayView<float> x, ArrayView<byte> q, QuantizeParams p)
    {
        for (long blk = DeviceMath.GlobalIndex; blk < p.Blocks; blk += DeviceMath.GridStride)
        {
            long x0 = blk * 32;
            float amax = 0f, max = 0f;
            for (int i = 0; i < 32; i++)
            {
                float v = x[x0 + i];
                float av = XMath.Abs(v);
                if (av > amax) { amax = av; max = v; }
            }
            if (p.Kind == QuantCode.Q8_0)
            {
                float d = amax / 127f;
                float id = d != 0f ? 1f / d : 0f;
                long at = blk * QuantCode.Q8_0BlockBytes;
                StoreScale(q, at, d);
                for (int i = 0; i < 32; i++)
                    q[at + 2 + i] = (byte)(sbyte)(int)XMath.RoundAwayFromZero(x[x0 + i] * id);
            }
            else
            {
                float d = max / -8f;
                float id = d != 0f ? 1f / d : 0f;
                long at = blk * QuantCode.Q4_0BlockBytes;
                StoreScale(q, at, d);
                for (int i = 0; i < 16; i++)
                {
                    int q0 = XMath.Min(15, (int)(x[x0 + i] * id + 8.5f));
                    int q1 = XMath.Min(15, (int)(x[x0 + 16 + i] * id + 8.5f));
                    q[at + 2 + i] = (byte)(q0 | (q1 << 4));
                }
            }
        }
    }

    /// <summary>x = dequantize(q), one thread per element.</summary>
    [Kernel]
    public static void Dequantize(ArrayView<byte> q, ArrayView<float> x, QuantizeParams p)
    {
        long count = p.Blocks * 32;
        for (long i = DeviceMath.GlobalIndex; i < count; i += DeviceMath.GridStride)
            x[i] = Dequant(q, p.Kind, i);
    }
}
