using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Tests.Formats;

/// <summary>An independent scalar model of ggml's block layouts, written from the format description as bit fields:
/// every quantity of element e is read with <see cref="Bits"/> at a bit address (byte·8 + bit) computed from e, one
/// element at a time, instead of the decoders' loops over packed bytes. The value formula (which scale multiplies
/// first) is part of the format and computed in fp32 in ggml's order.</summary>
internal static class GgmlBlockModel
{
    /// <summary>Weights per block and bytes per block of each blocked type.</summary>
    public static (int Elements, int Bytes) Layout(GgmlType type) => type switch
    {
        GgmlType.Q4_0 => (32, 18),
        GgmlType.Q4_1 => (32, 20),
        GgmlType.Q5_0 => (32, 22),
        GgmlType.Q5_1 => (32, 24),
        GgmlType.Q8_0 => (32, 34),
        GgmlType.Q2_K => (256, 84),
        GgmlType.Q3_K => (256, 110),
        GgmlType.Q4_K => (256, 144),
        GgmlType.Q5_K => (256, 176),
        GgmlType.Q6_K => (256, 210),
        _ => throw new ArgumentException($"{type} is not blocked"),
    };

    /// <summary><paramref name="width"/> bits starting at bit address <paramref name="at"/> (little-endian bit order
    /// within the block), read one bit at a time.</summary>
    public static int Bits(ReadOnlySpan<byte> block, int at, int width)
    {
        int v = 0;
        for (int i = 0; i < width; i++)
        {
            int bit = at + i;
            v |= ((block[bit / 8] >> (bit % 8)) & 1) << i;
        }
        return v;
    }

    private static float Half(ReadOnlySpan<byte> block, int byteAt) => (float)BitConverter.UInt16BitsToHalf((ushort)Bits(block, byteAt * 8, 16));

    private static int Signed8(ReadOnlySpan<byte> block, int byteAt) => (sbyte)(byte)Bits(block, byteAt * 8, 8);

    /// <summary>Element <paramref name="e"/> of one block.</summary>
    public static float Element(GgmlType type, ReadOnlySpan<byte> b, int e) => type switch
    {
        GgmlType.Q4_0 => (Bits(b, (2 + e % 16) * 8 + 4 * (e / 16), 4) - 8) * Half(b, 0),
        GgmlType.Q4_1 => Bits(b, (4 + e % 16) * 8 + 4 * (e / 16), 4) * Half(b, 0) + Half(b, 2),
        GgmlType.Q5_0 => (Bits(b, (6 + e % 16) * 8 + 4 * (e / 16), 4) + 16 * Bits(b, 2 * 8 + e, 1) - 16) * Half(b, 0),
        GgmlType.Q5_1 => (Bits(b, (8 + e % 16) * 8 + 4 * (e / 16), 4) + 16 * Bits(b, 4 * 8 + e, 1)) * Half(b, 0) + Half(b, 2),
        GgmlType.Q8_0 => Signed8(b, 2 + e) * Half(b, 0),
        GgmlType.Q2_K => Q2_K(b, e),
        GgmlType.Q3_K => Q3_K(b, e),
        GgmlType.Q4_K => QAffineK(b, e, five: false),
        GgmlType.Q5_K => QAffineK(b, e, five: true),
        GgmlType.Q6_K => Q6_K(b, e),
        _ => throw new ArgumentException($"{type} is not blocked"),
    };

    // scales[16] @0 (scale low nibble, min high nibble per 16 weights), qs[64] @16, d @80, dmin @82.
    // Weight e = 128h + 32t + i: 2 bits at bit 2t of qs[32h + i].
    private static float Q2_K(ReadOnlySpan<byte> b, int e)
    {
        int h = e / 128, t = e % 128 / 32, i = e % 32, g = e / 16;
        int q = Bits(b, (16 + 32 * h + i) * 8 + 2 * t, 2);
        float dl = Half(b, 80) * Bits(b, g * 8, 4), ml = Half(b, 82) * Bits(b, g * 8 + 4, 4);
        return dl * q - ml;
    }

    // hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Third bit of weight e: bit 4h + t of hmask[i] (set = +0, clear = −4).
    // 6-bit scale g: low 4 bits are nibble g/8 of byte g%8, high 2 bits are bits 2(g/4) of byte 8 + g%4.
    private static float Q3_K(ReadOnlySpan<byte> b, int e)
    {
        int h = e / 128, t = e % 128 / 32, i = e % 32, g = e / 16;
        int low = Bits(b, (32 + 32 * h + i) * 8 + 2 * t, 2);
        int high = Bits(b, i * 8 + 4 * h + t, 1);
        int scale = Bits(b, (96 + g % 8) * 8 + 4 * (g / 8), 4) | (Bits(b, (96 + 8 + g % 4) * 8 + 2 * (g / 4), 2) << 4);
        float dl = Half(b, 108) * (scale - 32);
        return dl * (low - (high == 1 ? 0 : 4));
    }

    // d @0, dmin @2, scales[12] @4, (Q5_K: qh[32] @16), qs[128] @16 or @48. Weight e = 64c + 32half + l: nibble
    // `half` of qs[32c + l]; Q5_K's fifth bit is bit s = e/32 of qh[l]. Sub-block s: for s < 4 scale = bits 0-5 of
    // scales[s], min = bits 0-5 of scales[s+4]; for s ≥ 4 scale = low nibble of scales[s+4] | bits 6-7 of scales[s-4]
    // << 4, min = high nibble of scales[s+4] | bits 6-7 of scales[s] << 4.
    private static float QAffineK(ReadOnlySpan<byte> b, int e, bool five)
    {
        int c = e / 64, half = e % 64 / 32, l = e % 32, s = e / 32;
        int qsAt = five ? 48 : 16;
        int q = Bits(b, (qsAt + 32 * c + l) * 8 + 4 * half, 4);
        if (five) q += 16 * Bits(b, (16 + l) * 8 + s, 1);
        int sc, mn;
        if (s < 4)
        {
            sc = Bits(b, (4 + s) * 8, 6);
            mn = Bits(b, (4 + s + 4) * 8, 6);
        }
        else
        {
            sc = Bits(b, (4 + s + 4) * 8, 4) | (Bits(b, (4 + s - 4) * 8 + 6, 2) << 4);
            mn = Bits(b, (4 + s + 4) * 8 + 4, 4) | (Bits(b, (4 + s) * 8 + 6, 2) << 4);
        }
        float d = Half(b, 0) * sc, m = Half(b, 2) * mn;
        return d * q - m;
    }

    // ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208. Weight e = 128h + 32p + l: low 4 bits are nibble p/2 of
    // ql[64h + 32(p%2) + l], high 2 bits are bits 2p of qh[32h + l]; scale of 16-weight group e/16.
    private static float Q6_K(ReadOnlySpan<byte> b, int e)
    {
        int h = e / 128, p = e % 128 / 32, l = e % 32;
        int q = Bits(b, (64 * h + 32 * (p % 2) + l) * 8 + 4 * (p / 2), 4) | (Bits(b, (128 + 32 * h + l) * 8 + 2 * p, 2) << 4);
        return Half(b, 208) * Signed8(b, 192 + e / 16) * (q - 32);
    }

    /// <summary>Random blocks whose fp16 fields are drawn from awkward values (negative zero, subnormals, the largest
    /// finite half, negative scales) as well as random finite halves; other bytes uniformly random.</summary>
    public static byte[] RandomBlocks(Rng rng, GgmlType type, int blocks)
    {
        var (_, bytes) = Layout(type);
        var data = new byte[blocks * bytes];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)rng.NextUInt64();
        foreach (int at in HalfOffsets(type))
            for (int b = 0; b < blocks; b++)
            {
                ushort h = OddHalf(rng);
                data[b * bytes + at] = (byte)h;
                data[b * bytes + at + 1] = (byte)(h >> 8);
            }
        return data;
    }

    private static int[] HalfOffsets(GgmlType type) => type switch
    {
        GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q8_0 => [0],
        GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.Q4_K or GgmlType.Q5_K => [0, 2],
        GgmlType.Q2_K => [80, 82],
        GgmlType.Q3_K => [108],
        GgmlType.Q6_K => [208],
        _ => [],
    };

    private static readonly ushort[] Awkward = [0x8000, 0x0000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC00, 0x1234];

    private static ushort OddHalf(Rng rng)
    {
        if (rng.NextInt(2) == 0) return Awkward[rng.NextInt(Awkward.Length)];
        while (true)
        {
            ushort h = (ushort)rng.NextUInt64();
            if ((h & 0x7C00) != 0x7C00) return h;  // finite
        }
    }
}
