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
    /// <summary>x [N, K] with N ≤ 4, w [M, K] quantized, y [N, M].</summary>
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

    /// <summary>Decode path y [N, M] = x [N, K] · wᵀ for N ≤ 4: one group per weight row (grid-stride over
    /// rows), each thread dequantizes whole blocks once and applies them to every x row. Dynamic shared
    /// memory: warpSize floats.</summary>
    [Kernel]
    public static void Gemv(ArrayView<float> x, ArrayView<byte> w, ArrayView<float> y, QuantGemvParams p)
    {
        var scratch = SharedMemory.GetDynamic<float>();
        int blocks = p.K / 32;
        for (int m = Grid.IdxX; m < p.M; m += Grid.DimX)
        {
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int blk = Group.IdxX; blk < blocks; blk += Group.DimX)
            {
                long e0 = (long)m * p.K + blk * 32;
                int k0 = blk * 32;
                for (int i = 0; i < 32; i++)
                {
                    float wv = Dequant(w, p.Kind, e0 + i);
                    s0 += wv * x[k0 + i];
                    if (p.N > 1) s1 += wv * x[p.K + k0 + i];
                    if (p.N > 2) s2 += wv * x[2 * p.K + k0 + i];
                    if (p.N > 3) s3 += wv * x[3 * p.K + k0 + i];
                }
            }
            s0 = DeviceMath.GroupSum(s0, scratch);
            if (p.N > 1) s1 = DeviceMath.GroupSum(s1, scratch);
            if (p.N > 2) s2 = DeviceMath.GroupSum(s2, scratch);
            if (p.N > 3) s3 = DeviceMath.GroupSum(s3, scratch);
            if (Group.IdxX == 0)
            {
                y[m] = s0;
                if (p.N > 1) y[p.M + m] = s1;
                if (p.N > 2) y[2 * p.M + m] = s2;
                if (p.N > 3) y[3 * p.M + m] = s3;
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
