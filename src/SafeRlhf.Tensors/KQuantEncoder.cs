using System.Buffers.Binary;

namespace SafeRlhf.Tensors;

/// <summary>Encoders for the K-quant super-blocks (<see cref="KQuantBlocks"/> defines the layouts): a plain
/// min/max fit per 32- (Q4_K, Q5_K) or 16-weight (Q6_K) sub-block with 6-bit (or int8) sub-block scales. They write
/// valid ggml blocks for weight files; llama.cpp's search for the best scale (smaller error) is not reproduced, so
/// the bytes differ from llama-quantize's while the decoder is the same.</summary>
public static class KQuantEncoder
{
    private const int QK = DTypeInfo.KQuantBlock;

    /// <summary>Encodes a row of whole super-blocks.</summary>
    public static void QuantizeRow(DType dtype, ReadOnlySpan<float> x, Span<byte> blocks)
    {
        int bytes = dtype.BlockBytes();
        for (int b = 0; b < x.Length / QK; b++)
        {
            var xs = x.Slice(b * QK, QK);
            var blk = blocks.Slice(b * bytes, bytes);
            switch (dtype)
            {
                case DType.Q4_K: QuantizeAffine(xs, blk, 15); break;
                case DType.Q5_K: QuantizeAffine(xs, blk, 31); break;
                case DType.Q6_K: QuantizeQ6_K(xs, blk); break;
                default: throw new TensorDTypeException($"{dtype} is not a K-quant dtype");
            }
        }
    }

    // Q4_K (levels 15) and Q5_K (levels 31): x ≈ (d·sc)·q − dmin·mn per 32 weights.
    private static void QuantizeAffine(ReadOnlySpan<float> x, Span<byte> blk, int levels)
    {
        Span<float> step = stackalloc float[8], offset = stackalloc float[8];
        for (int s = 0; s < 8; s++)
        {
            float lo = 0, hi = 0;
            foreach (float v in x.Slice(32 * s, 32)) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
            step[s] = (hi - lo) / levels;
            offset[s] = -lo;
        }
        float maxStep = 0, maxOffset = 0;
        for (int s = 0; s < 8; s++) { maxStep = MathF.Max(maxStep, step[s]); maxOffset = MathF.Max(maxOffset, offset[s]); }
        float d = (float)(Half)(maxStep / 63), dmin = (float)(Half)(maxOffset / 63);
        Span<int> sc = stackalloc int[8], mn = stackalloc int[8];
        for (int s = 0; s < 8; s++)
        {
            sc[s] = d > 0 ? Math.Clamp((int)MathF.Round(step[s] / d), 0, 63) : 0;
            mn[s] = dmin > 0 ? Math.Clamp((int)MathF.Round(offset[s] / dmin), 0, 63) : 0;
        }
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)d);
        BinaryPrimitives.WriteHalfLittleEndian(blk[2..], (Half)dmin);
        var packed = blk.Slice(4, 12);
        for (int j = 0; j < 4; j++)
        {
            packed[j] = (byte)(sc[j] | ((sc[j + 4] >> 4) << 6));
            packed[j + 4] = (byte)(mn[j] | ((mn[j + 4] >> 4) << 6));
            packed[j + 8] = (byte)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
        }
        bool five = levels == 31;
        var qh = five ? blk.Slice(16, 32) : default;
        var qs = blk.Slice(five ? 48 : 16, 128);
        qh.Clear();
        qs.Clear();
        for (int s = 0; s < 8; s++)
        {
            float ds = d * sc[s], ms = dmin * mn[s];
            for (int l = 0; l < 32; l++)
            {
                int q = ds > 0 ? Math.Clamp((int)MathF.Round((x[32 * s + l] + ms) / ds), 0, levels) : 0;
                int c = s / 2;
                qs[32 * c + l] |= (byte)((q & 0xF) << (s % 2 == 0 ? 0 : 4));
                if (five && q > 15) qh[l] |= (byte)(1 << s);
            }
        }
    }

    // Q6_K: x ≈ (d·scale[g])·(q − 32) per 16 weights, int8 group scales.
    private static void QuantizeQ6_K(ReadOnlySpan<float> x, Span<byte> blk)
    {
        Span<float> group = stackalloc float[16];
        float maxAbs = 0, maxGroup = 0;
        for (int g = 0; g < 16; g++)
        {
            float amax = 0, max = 0;
            foreach (float v in x.Slice(16 * g, 16))
                if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
            group[g] = max / -32f;
            if (MathF.Abs(group[g]) > maxAbs) { maxAbs = MathF.Abs(group[g]); maxGroup = group[g]; }
        }
        float d = (float)(Half)(maxGroup / -128f);
        blk.Clear();
        var ql = blk[..128];
        var qh = blk.Slice(128, 64);
        var scales = blk.Slice(192, 16);
        for (int g = 0; g < 16; g++)
        {
            int sc = d != 0 ? Math.Clamp((int)MathF.Round(group[g] / d), -128, 127) : 0;
            scales[g] = (byte)(sbyte)sc;
            float ds = d * sc;
            for (int i = 0; i < 16; i++)
            {
                int e = 16 * g + i;
                int q = ds != 0 ? Math.Clamp((int)MathF.Round(x[e] / ds) + 32, 0, 63) : 32;
                int h = e / 128, r = e % 128, part = r / 32, l = r % 32;
                int lowIndex = 64 * h + l + (part % 2 == 1 ? 32 : 0);
                ql[lowIndex] |= (byte)((q & 0xF) << (part >= 2 ? 4 : 0));
                qh[32 * h + l] |= (byte)((q >> 4) << (2 * part));
            }
        }
        BinaryPrimitives.WriteHalfLittleEndian(blk[208..], (Half)d);
    }
}
