using System.Buffers.Binary;

namespace SafeRlhf.Llama.Formats;

/// <summary>Decoders for the ggml types that are dequantized to F32 when a GGUF file is read (fp32 arithmetic in
/// ggml's order).
/// <list type="bullet">
/// <item>Q4_1 (20 bytes / 32): fp16 d, fp16 m, 16 bytes; weight j is the low nibble of byte j, j+16 the high one; x = d·q + m.</item>
/// <item>Q5_0 (22 bytes / 32): fp16 d, 32 bits qh, 16 bytes nibbles; bit j of qh is weight j's fifth bit; x = d·(q − 16).</item>
/// <item>Q5_1 (24 bytes / 32): fp16 d, fp16 m, qh, nibbles as Q5_0; x = d·q + m.</item>
/// <item>Q2_K (84 bytes / 256): 16 bytes scales (low nibble scale, high nibble min per 16 weights), 64 bytes of
/// 2-bit values, fp16 d, fp16 dmin. In half h, shift s (0, 2, 4, 6), l &lt; 32: weight 128h + 32(s/2) + l is bits
/// s..s+1 of qs[32h + l]; x = (d·scale)·q − dmin·min of its 16-weight group.</item>
/// <item>Q3_K (110 bytes / 256): 32 bytes hmask, 64 bytes 2-bit values (as Q2_K), 12 bytes of 16 packed 6-bit
/// scales, fp16 d. Weight 128h + 32t + l takes bit (4h + t) of hmask[l] as its third bit, clear meaning −4;
/// x = (d·(scale − 32))·q.</item>
/// </list></summary>
public static class GgmlLoadTimeBlocks
{
    public const int Q4_1Bytes = 2 + 2 + 16, Q5_0Bytes = 2 + 4 + 16, Q5_1Bytes = 2 + 2 + 4 + 16;
    public const int Q2_KBytes = 16 + 64 + 2 + 2, Q3_KBytes = 32 + 64 + 12 + 2;

    /// <summary>Decodes whole blocks of <paramref name="type"/> into <paramref name="x"/> (its length a multiple of the block).</summary>
    public static void Dequantize(GgmlType type, ReadOnlySpan<byte> blocks, Span<float> x)
    {
        int per = GgmlTypes.BlockElements(type), bytes = GgmlTypes.BlockBytes(type);
        for (int b = 0; b < x.Length / per; b++)
        {
            var blk = blocks.Slice(b * bytes, bytes);
            var xs = x.Slice(b * per, per);
            switch (type)
            {
                case GgmlType.Q4_1: DequantizeQ4_1(blk, xs); break;
                case GgmlType.Q5_0: DequantizeQ5(blk[..2], default, blk[2..], xs); break;
                case GgmlType.Q5_1: DequantizeQ5(blk[..2], blk[2..4], blk[4..], xs); break;
                case GgmlType.Q2_K: DequantizeQ2_K(blk, xs); break;
                case GgmlType.Q3_K: DequantizeQ3_K(blk, xs); break;
                default: throw new ArgumentException($"{type} is not dequantized at load");
            }
        }
    }

    private static float Half(ReadOnlySpan<byte> b) => (float)BinaryPrimitives.ReadHalfLittleEndian(b);

    private static void DequantizeQ4_1(ReadOnlySpan<byte> b, Span<float> x)
    {
        float d = Half(b), m = Half(b[2..]);
        for (int j = 0; j < 16; j++)
        {
            x[j] = (b[4 + j] & 0xF) * d + m;
            x[j + 16] = (b[4 + j] >> 4) * d + m;
        }
    }

    // Q5_0 (no min: centred at 16) and Q5_1 (min m); rest = qh then 16 bytes of nibbles.
    private static void DequantizeQ5(ReadOnlySpan<byte> dBytes, ReadOnlySpan<byte> mBytes, ReadOnlySpan<byte> rest, Span<float> x)
    {
        float d = Half(dBytes);
        bool hasMin = !mBytes.IsEmpty;
        float m = hasMin ? Half(mBytes) : 0f;
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(rest);
        var qs = rest[4..];
        for (int j = 0; j < 16; j++)
        {
            int q0 = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
            int q1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
            if (hasMin)
            {
                x[j] = q0 * d + m;
                x[j + 16] = q1 * d + m;
            }
            else
            {
                x[j] = (q0 - 16) * d;
                x[j + 16] = (q1 - 16) * d;
            }
        }
    }

    private static void DequantizeQ2_K(ReadOnlySpan<byte> b, Span<float> x)
    {
        var scales = b[..16];
        var qs = b.Slice(16, 64);
        float d = Half(b[80..]), dmin = Half(b[82..]);
        int group = 0;
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++)
                for (int half = 0; half < 2; half++, group++)
                {
                    float dl = d * (scales[group] & 0xF), ml = dmin * (scales[group] >> 4);
                    for (int l = 0; l < 16; l++)
                    {
                        int i = 16 * half + l;
                        x[128 * h + 32 * t + i] = dl * ((qs[32 * h + i] >> (2 * t)) & 3) - ml;
                    }
                }
    }

    /// <summary>The 6-bit scale (0..63) of 16-weight group <paramref name="i"/> of a Q3_K block.</summary>
    public static int Q3_KScale(ReadOnlySpan<byte> packed, int i)
    {
        int low = i < 8 ? packed[i] & 0xF : packed[i - 8] >> 4;
        int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        return low | (high << 4);
    }

    private static void DequantizeQ3_K(ReadOnlySpan<byte> b, Span<float> x)
    {
        var hmask = b[..32];
        var qs = b.Slice(32, 64);
        var packed = b.Slice(96, 12);
        float d = Half(b[108..]);
        int group = 0;
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < 4; t++)
                for (int half = 0; half < 2; half++, group++)
                {
                    float dl = d * (Q3_KScale(packed, group) - 32);
                    for (int l = 0; l < 16; l++)
                    {
                        int i = 16 * half + l;
                        int q = ((qs[32 * h + i] >> (2 * t)) & 3) - ((hmask[i] >> (4 * h + t) & 1) != 0 ? 0 : 4);
                        x[128 * h + 32 * t + i] = dl * q;
                    }
                }
    }
}
