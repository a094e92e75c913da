using ILGPU;

namespace SafeRlhf.Kernels;

/// <summary>One weight of a ggml K-quant super-block (256 weights: Q4_K 144 bytes, Q5_K 176, Q6_K 210; the layouts
/// of SafeRlhf.Tensors.KQuantBlocks), decoded on the device byte-wise (blocks are not word aligned). Used by the
/// quantized matmul kernels through <see cref="QuantizedMatMulKernels.Dequant"/>.</summary>
public static class KQuantDecode
{
    /// <summary>Weight <paramref name="i"/> (0..255) of the super-block starting at byte <paramref name="at"/>.</summary>
    public static float Element(ArrayView<byte> w, int kind, long at, int i)
    {
        if (kind == QuantCode.Q6_K) return Q6K(w, at, i);
        bool five = kind == QuantCode.Q5_K;
        int c = i >> 6, high = (i >> 5) & 1, l = i & 31, s = i >> 5;
        int packed = w[at + (five ? 48 : 16) + 32 * c + l];
        int q = high == 0 ? packed & 0xF : packed >> 4;
        if (five) q += ((w[at + 16 + l] >> s) & 1) << 4;
        long sc = at + 4;
        int scale, min;
        if (s < 4)
        {
            scale = w[sc + s] & 63;
            min = w[sc + s + 4] & 63;
        }
        else
        {
            scale = (w[sc + s + 4] & 0xF) | ((w[sc + s - 4] >> 6) << 4);
            min = (w[sc + s + 4] >> 4) | ((w[sc + s] >> 6) << 4);
        }
        float d = DeviceMath.LoadHalfBytes(w, at) * scale;
        float m = DeviceMath.LoadHalfBytes(w, at + 2) * min;
        return d * q - m;
    }

    // ql[128], qh[64], int8 scales[16], fp16 d: weight 128h + 32p + l.
    private static float Q6K(ArrayView<byte> w, long at, int i)
    {
        int h = i >> 7, p = (i >> 5) & 3, l = i & 31;
        int lo = w[at + 64 * h + 32 * (p & 1) + l];
        int nibble = p < 2 ? lo & 0xF : lo >> 4;
        int top = (w[at + 128 + 32 * h + l] >> (2 * p)) & 3;
        int q = (nibble | (top << 4)) - 32;
        return DeviceMath.LoadHalfBytes(w, at + 208) * (sbyte)w[at + 192 + (i >> 4)] * q;
    }
}
