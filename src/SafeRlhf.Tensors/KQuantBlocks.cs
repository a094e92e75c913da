using System.Buffers.Binary;

namespace SafeRlhf.Tensors;

/// <summary>The scalar ggml K-quant super-blocks (256 weights), the one C# definition of their layout and of the
/// dequantized value (fp32 arithmetic in ggml's order): the reference backend, the weight-file reader and the
/// writers use them, and the native and GPU kernels are tested against them.
/// <list type="bullet">
/// <item>Q4_K (144 bytes): fp16 d, fp16 dmin, 12 bytes packing eight 6-bit scales sc and mins mn, 128 bytes of
/// nibbles. Weights 64·c .. 64·c+31 are the low nibbles of qs[32·c ..], 64·c+32 .. 64·c+63 the high nibbles;
/// sub-block s (32 weights) is x = (d·sc[s])·q − dmin·mn[s].</item>
/// <item>Q5_K (176 bytes): as Q4_K with 32 bytes qh before the nibbles; bit 2c of qh[l] is the fifth bit of weight
/// 64·c + l, bit 2c+1 that of weight 64·c + 32 + l.</item>
/// <item>Q6_K (210 bytes): 128 bytes ql, 64 bytes qh, 16 int8 scales, fp16 d. In half h (128 weights), l &lt; 32:
/// weights l, l+32, l+64, l+96 take ql[64h+l] low, ql[64h+l+32] low, ql[64h+l] high, ql[64h+l+32] high nibble and
/// bits 0-1, 2-3, 4-5, 6-7 of qh[32h+l] as their top two bits; x = (d·scale[16-weight group])·(q − 32).</item>
/// </list></summary>
public static class KQuantBlocks
{
    private const int QK = DTypeInfo.KQuantBlock;

    /// <summary>Scale and min of sub-block <paramref name="j"/> (0..7) from the 12 packed bytes of a Q4_K/Q5_K block.</summary>
    public static (int Scale, int Min) ScaleMin(ReadOnlySpan<byte> packed, int j) => j < 4
        ? (packed[j] & 63, packed[j + 4] & 63)
        : ((packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4), (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));

    /// <summary>One super-block of <paramref name="dtype"/> → 256 floats.</summary>
    public static void Dequantize(DType dtype, ReadOnlySpan<byte> block, Span<float> x)
    {
        switch (dtype)
        {
            case DType.Q4_K: DequantizeAffine(block, five: false, x); break;
            case DType.Q5_K: DequantizeAffine(block, five: true, x); break;
            case DType.Q6_K: DequantizeQ6_K(block, x); break;
            default: throw new TensorDTypeException($"{dtype} is not a K-quant dtype");
        }
    }

    /// <summary>Q4_K (144 bytes: d, dmin, scales[12], qs[128]) and Q5_K (176 bytes: d, dmin, scales[12], qh[32], qs[128]):
    /// x = d·scale·q − dmin·min per 32-weight sub-block, q a nibble plus, for Q5_K, a fifth bit from qh.</summary>
    private static void DequantizeAffine(ReadOnlySpan<byte> b, bool five, Span<float> x)
    {
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(b), dmin = (float)BinaryPrimitives.ReadHalfLittleEndian(b[2..]);
        var scales = b.Slice(4, 12);
        var qh = five ? b.Slice(16, 32) : default;
        var qs = b.Slice(five ? 48 : 16, 128);
        for (int c = 0; c < 4; c++)
        {
            var (s0, m0) = ScaleMin(scales, 2 * c);
            var (s1, m1) = ScaleMin(scales, 2 * c + 1);
            float d0 = d * s0, o0 = dmin * m0, d1 = d * s1, o1 = dmin * m1;
            for (int l = 0; l < 32; l++)
            {
                int h0 = five ? (qh[l] >> (2 * c)) & 1 : 0, h1 = five ? (qh[l] >> (2 * c + 1)) & 1 : 0;
                x[64 * c + l] = d0 * ((qs[32 * c + l] & 0xF) + 16 * h0) - o0;
                x[64 * c + 32 + l] = d1 * ((qs[32 * c + l] >> 4) + 16 * h1) - o1;
            }
        }
    }

    private static void DequantizeQ6_K(ReadOnlySpan<byte> b, Span<float> x)
    {
        var ql = b[..128];
        var qh = b.Slice(128, 64);
        var sc = b.Slice(192, 16);
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(b[208..]);
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++)
            {
                int lo = ql[64 * h + l], hi = ql[64 * h + l + 32], top = qh[32 * h + l];
                int q0 = ((lo & 0xF) | ((top & 3) << 4)) - 32;
                int q1 = ((hi & 0xF) | (((top >> 2) & 3) << 4)) - 32;
                int q2 = ((lo >> 4) | (((top >> 4) & 3) << 4)) - 32;
                int q3 = ((hi >> 4) | (((top >> 6) & 3) << 4)) - 32;
                int g = 8 * h + l / 16;
                x[128 * h + l] = d * (sbyte)sc[g] * q0;
                x[128 * h + l + 32] = d * (sbyte)sc[g + 2] * q1;
                x[128 * h + l + 64] = d * (sbyte)sc[g + 4] * q2;
                x[128 * h + l + 96] = d * (sbyte)sc[g + 6] * q3;
            }
    }

    /// <summary>Dequantizes a row of whole super-blocks.</summary>
    public static void DequantizeRow(DType dtype, ReadOnlySpan<byte> blocks, Span<float> x)
    {
        int bytes = dtype.BlockBytes();
        for (int b = 0; b < x.Length / QK; b++) Dequantize(dtype, blocks.Slice(b * bytes, bytes), x.Slice(b * QK, QK));
    }
}
