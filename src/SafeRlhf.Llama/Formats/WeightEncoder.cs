using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>Encodes float values as stored bytes of a weight type: F32, F16 and BF16 (round to nearest even), and
/// the ggml blocks Q8_0 and Q4_0 with the same arithmetic as the backends' quantization (Q8_0: d = max|x|/127,
/// q = round(x/d); Q4_0: d = m/−8 with m the element of largest magnitude, q = min(15, trunc(x/d + 8.5))), and the
/// K-quants Q4_K, Q5_K, Q6_K with <see cref="KQuantEncoder"/>'s min/max fit.</summary>
public static class WeightEncoder
{
    /// <summary>Bytes of <paramref name="count"/> values of <paramref name="dtype"/>.</summary>
    public static long ByteCount(DType dtype, long count) => dtype.ByteCount(count);

    /// <summary>Encodes <paramref name="values"/> into <paramref name="destination"/>, which must hold exactly
    /// <see cref="ByteCount"/> bytes. Quantized types need whole blocks (32 values, 256 for the K-quants).</summary>
    public static void Encode(DType dtype, ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (destination.Length != ByteCount(dtype, values.Length))
            throw new ArgumentException($"{values.Length} {dtype} values take {ByteCount(dtype, values.Length)} bytes, the destination has {destination.Length}");
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case DType.F16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(destination[(2 * i)..], (Half)values[i]);
                break;
            case DType.BF16:
                for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(destination[(2 * i)..], ToBFloat16(values[i]));
                break;
            case DType.Q8_0:
                for (int b = 0; b < values.Length / DTypeInfo.QuantBlock; b++)
                    QuantBlocks.QuantizeQ8_0(values.Slice(b * DTypeInfo.QuantBlock, DTypeInfo.QuantBlock), destination.Slice(b * DTypeInfo.Q8_0BlockBytes, DTypeInfo.Q8_0BlockBytes));
                break;
            case DType.Q4_0:
                for (int b = 0; b < values.Length / DTypeInfo.QuantBlock; b++)
                    QuantBlocks.QuantizeQ4_0(values.Slice(b * DTypeInfo.QuantBlock, DTypeInfo.QuantBlock), destination.Slice(b * DTypeInfo.Q4_0BlockBytes, DTypeInfo.Q4_0BlockBytes));
                break;
            case DType.Q4_K or DType.Q5_K or DType.Q6_K:
                KQuantEncoder.QuantizeRow(dtype, values, destination);
                break;
            default:
                throw new ArgumentException($"{dtype} is not a weight type that can be encoded (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K are)");
        }
    }

    /// <summary>The bfloat16 bit pattern nearest to <paramref name="value"/> (ties to even; NaN stays NaN).</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}
