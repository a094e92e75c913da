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
}
