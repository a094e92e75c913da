using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Reference;

/// <summary>Scalar reference for the ggml block formats. Q8_0 block (34 bytes): fp16 scale d, then 32 int8
/// q with x ≈ d·q, d = max|x|/127. Q4_0 block (18 bytes): fp16 scale d, then 16 bytes whose low nibbles
/// hold elements 0..15 and high nibbles elements 16..31, x ≈ d·(q − 8), d = m/−8 with m the element of
/// largest magnitude (sign kept). The K-quants (Q4_K, Q5_K, Q6_K) are decoded by <see cref="KQuantBlocks"/>.</summary>
public static class QuantizedBlocks
{
    public static void QuantizeRow(DType dtype, ReadOnlySpan<float> x, Span<byte> blocks)
    {
        if (dtype.IsKQuant()) throw new TensorDTypeException($"Quantize: {dtype} is read from files only (quantize to Q8_0 or Q4_0)");
        int nb = x.Length / DTypeInfo.QuantBlock;
        for (int b = 0; b < nb; b++)
        {
            var xs = x.Slice(b * 32, 32);
            if (dtype == DType.Q8_0) QuantBlocks.QuantizeQ8_0(xs, blocks.Slice(b * DTypeInfo.Q8_0BlockBytes, DTypeInfo.Q8_0BlockBytes));
            else if (dtype == DType.Q4_0) QuantBlocks.QuantizeQ4_0(xs, blocks.Slice(b * DTypeInfo.Q4_0BlockBytes, DTypeInfo.Q4_0BlockBytes));
            else throw new TensorDTypeException($"QuantizeRow: {dtype} is not quantized");
        }
    }

    public static void DequantizeRow(DType dtype, ReadOnlySpan<byte> blocks, Span<float> x)
    {
        if (dtype.IsKQuant())
        {
            KQuantBlocks.DequantizeRow(dtype, blocks, x);
            return;
        }
        int nb = x.Length / DTypeInfo.QuantBlock;
        for (int b = 0; b < nb; b++)
        {
            var xs = x.Slice(b * 32, 32);
            if (dtype == DType.Q8_0)
            {
                var blk = blocks.Slice(b * DTypeInfo.Q8_0BlockBytes, DTypeInfo.Q8_0BlockBytes);
                float d = (float)BitConverter.ToHalf(blk);
                for (int j = 0; j < 32; j++) xs[j] = (sbyte)blk[2 + j] * d;
            }
            else if (dtype == DType.Q4_0)
            {
                var blk = blocks.Slice(b * DTypeInfo.Q4_0BlockBytes, DTypeInfo.Q4_0BlockBytes);
                float d = (float)BitConverter.ToHalf(blk);
                for (int j = 0; j < 16; j++)
                {
                    xs[j] = ((blk[2 + j] & 0x0F) - 8) * d;
                    xs[j + 16] = ((blk[2 + j] >> 4) - 8) * d;
                }
            }
            else throw new TensorDTypeException($"DequantizeRow: {dtype} is not quantized");
        }
    }
}
