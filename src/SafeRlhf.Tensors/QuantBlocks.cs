using System.Buffers.Binary;

namespace SafeRlhf.Tensors;

/// <summary>The scalar ggml block quantizers, the one definition of Q8_0 and Q4_0 rounding: the reference backend
/// and the weight-file writers use them, and the native and GPU kernels are tested against them.</summary>
public static class QuantBlocks
{
    /// <summary>32 values → one Q8_0 block: fp16 d = max|x| / 127, q = round(x / d) (ties away from zero).</summary>
    public static void QuantizeQ8_0(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        for (int j = 0; j < DTypeInfo.QuantBlock; j++) block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    /// <summary>32 values → one Q4_0 block: fp16 d = (the value of largest magnitude) / −8, q = min(15, trunc(x / d + 8.5)),
    /// element j in the low nibble of byte j and element j + 16 in its high nibble.</summary>
    public static void QuantizeQ4_0(ReadOnlySpan<float> x, Span<byte> block)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
        for (int j = 0; j < DTypeInfo.QuantBlock / 2; j++)
        {
            int q0 = Math.Min(15, (int)(sbyte)(x[j] * id + 8.5f));
            int q1 = Math.Min(15, (int)(sbyte)(x[j + 16] * id + 8.5f));
            block[2 + j] = (byte)(q0 | (q1 << 4));
        }
    }

    /// <summary>Q8_0/Q4_0/K-quant matrix bytes [m, k] in the file layout (rows of blocks) → the same weights in the row-interleaved
    /// layout of <paramref name="interleaved"/> (Q8_0x16, Q4_0x16, Q4_Kx16, Q5_Kx16 or Q6_Kx16), the one definition of those layouts: rows go in
    /// groups of 16, group g filling bytes [g·B·S, (g+1)·B·S) with B = k/32 blocks per row and S = 16 × block bytes.
    /// In a group, for each block b, 64-byte chunks c = 0..3 (Q4_0) or 0..7 (Q8_0): chunk c holds for row r of the
    /// group, at bytes 4r .. 4r+3, the block's value bytes qs[4c .. 4c+3] (Q8_0: each XOR 0x80, q + 128 unsigned);
    /// after the last block come the fp16 scales, that of block b, row r at index 16b + r.
    /// The K-quants (Q4_Kx16, Q5_Kx16, Q6_Kx16; k a multiple of 256) interleave 4-byte words instead: group g fills
    /// bytes [g·16·B·S, (g+1)·16·B·S) with S = k/256 super-blocks per row of B bytes (144, 176, 210); in it super-block
    /// s fills 16·B bytes, whose 64-byte chunk t (t &lt; B/4, rounded down) holds for row r of the group, at bytes
    /// 4r .. 4r+3, the bytes 4t .. 4t+3 of that row's super-block s; Q6_K's last two bytes (its fp16 d) follow as 32
    /// bytes, row r's at 2r .. 2r+1.</summary>
    public static void InterleaveRows(DType interleaved, ReadOnlySpan<byte> file, Span<byte> dst, int m, int k) =>
        Permute(interleaved, file, dst, m, k, toInterleaved: true);

    /// <summary>The inverse of <see cref="InterleaveRows"/>: row-interleaved bytes → the file layout.</summary>
    public static void DeinterleaveRows(DType interleaved, ReadOnlySpan<byte> src, Span<byte> file, int m, int k) =>
        Permute(interleaved, src, file, m, k, toInterleaved: false);

    private static void Permute(DType interleaved, ReadOnlySpan<byte> src, Span<byte> dst, int m, int k, bool toInterleaved)
    {
        if (!interleaved.IsInterleaved()) throw new TensorDTypeException($"InterleaveRows: {interleaved} is not an interleaved layout");
        const int g16 = DTypeInfo.InterleavedRows;
        int per = interleaved.BlockElements();
        if (m % g16 != 0 || k % per != 0)
            throw new TensorShapeException($"InterleaveRows: [{m}, {k}] needs rows a multiple of {g16} and columns of {per}");
        long bytes = interleaved.ByteCount((long)m * k);
        if (src.Length < bytes || dst.Length < bytes)
            throw new TensorShapeException($"InterleaveRows: {interleaved} [{m}, {k}] needs {bytes} bytes (source {src.Length}, destination {dst.Length})");
        if (interleaved.FileLayout().IsKQuant())
        {
            int superBytes = interleaved.BlockBytes(), supers = k / per, words = superBytes / 4;
            for (int j = 0; j < m; j++)
                for (int s = 0; s < supers; s++)
                {
                    long file = ((long)j * supers + s) * superBytes;
                    long at = (j / g16 * (long)supers + s) * g16 * superBytes;
                    for (int t = 0; t < words; t++)
                        Move(src, dst, file + 4 * t, at + 64L * t + 4 * (j % g16), 4, 0, toInterleaved);
                    if (superBytes % 4 != 0)
                        Move(src, dst, file + 4 * words, at + 64L * words + 2 * (j % g16), 2, 0, toInterleaved);
                }
            return;
        }
        bool q8 = interleaved == DType.Q8_0x16;
        int blockBytes = interleaved.BlockBytes(), valueBytes = blockBytes - 2, chunks = valueBytes / 4;
        int blocks = k / DTypeInfo.QuantBlock;
        long groupBytes = (long)g16 * blocks * blockBytes, valueRegion = (long)blocks * g16 * valueBytes;
        for (int j = 0; j < m; j++)
        {
            long group = j / g16 * groupBytes;
            int r = j % g16;
            for (int b = 0; b < blocks; b++)
            {
                long file = ((long)j * blocks + b) * blockBytes;
                long scale = group + valueRegion + 2L * (b * g16 + r);
                Move(src, dst, file, scale, 2, 0, toInterleaved);
                for (int c = 0; c < chunks; c++)
                    Move(src, dst, file + 2 + 4 * c, group + (long)b * g16 * valueBytes + 64L * c + 4 * r, 4, q8 ? (byte)0x80 : (byte)0, toInterleaved);
            }
        }
    }

    /// <summary>Copies <paramref name="count"/> bytes between a file-layout offset and an interleaved offset, XOR
    /// <paramref name="flip"/>.</summary>
    private static void Move(ReadOnlySpan<byte> src, Span<byte> dst, long fileAt, long interleavedAt, int count, byte flip, bool toInterleaved)
    {
        long from = toInterleaved ? fileAt : interleavedAt, to = toInterleaved ? interleavedAt : fileAt;
        for (int t = 0; t < count; t++) dst[(int)(to + t)] = (byte)(src[(int)(from + t)] ^ flip);
    }
}
