namespace SafeRlhf.TestSupport;

/// <summary>ggml's Q8_0 and Q4_0 quantizers written from the block definitions, one block at a time: the expected bytes of
/// every backend's Quantize and the weights of the native int8 product model.</summary>
public static class GgmlQuantizers
{
    /// <summary>ggml block_q8_0: fp16 d = amax/127, then 32 int8 q = round(x/d) (half away from zero).</summary>
    public static byte[] QuantizeQ8(float[] x)
    {
        var bytes = new byte[x.Length / 32 * 34];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            float d = amax / 127f;
            float inv = d == 0 ? 0 : 1f / d;
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 34, 2), (Half)d);
            for (int j = 0; j < 32; j++)
                bytes[b * 34 + 2 + j] = unchecked((byte)(sbyte)Math.Round(x[b * 32 + j] * inv, MidpointRounding.AwayFromZero));
        }
        return bytes;
    }

    /// <summary>ggml block_q4_0: fp16 d = m/−8 (m the signed value of largest magnitude, first one on ties),
    /// q = min(15, trunc(x/d + 8.5)); byte j holds element j (low nibble) and element j+16 (high nibble).</summary>
    public static byte[] QuantizeQ4(float[] x)
    {
        var bytes = new byte[x.Length / 32 * 18];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0, m = 0;
            for (int j = 0; j < 32; j++)
            {
                float v = x[b * 32 + j];
                if (Math.Abs(v) > amax) { amax = Math.Abs(v); m = v; }
            }
            float d = m / -8f;
            float inv = d == 0 ? 0 : 1f / d;
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 18, 2), (Half)d);
            for (int j = 0; j < 16; j++)
            {
                int lo = Math.Min(15, (int)(x[b * 32 + j] * inv + 8.5f));
                int hi = Math.Min(15, (int)(x[b * 32 + j + 16] * inv + 8.5f));
                bytes[b * 18 + 2 + j] = (byte)(lo | (hi << 4));
            }
        }
        return bytes;
    }
}
