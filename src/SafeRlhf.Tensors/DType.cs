namespace SafeRlhf.Tensors;

/// <summary>Element types. F32/F64 are compute types; BF16/F16 are storage types with fp32 compute;
/// Q8_0 and Q4_0 are ggml-compatible block-quantized storage types (32 weights per block); Q4_K, Q5_K and Q6_K are
/// ggml's K-quant storage types (256-weight super-blocks, see <see cref="KQuantBlocks"/>). Q8_0x16, Q4_0x16, Q4_Kx16,
/// Q5_Kx16 and Q6_Kx16 hold the same blocks as Q8_0, Q4_0, Q4_K, Q5_K and Q6_K with the rows of a [M, K] matrix
/// interleaved in groups of 16, the layout the native CPU product reads in place (<see cref="QuantBlocks.InterleaveRows"/>);
/// they are made from matrices of those five types only.</summary>
public enum DType
{
    F32,
    F64,
    BF16,
    F16,
    I32,
    Q8_0,
    Q4_0,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_0x16,
    Q4_0x16,
    Q4_Kx16,
    Q5_Kx16,
    Q6_Kx16,
}

/// <summary>Sizes and properties of <see cref="DType"/> values.</summary>
public static class DTypeInfo
{
    /// <summary>Weights per quantization block for Q8_0 and Q4_0.</summary>
    public const int QuantBlock = 32;

    /// <summary>Bytes of one Q8_0 block: fp16 scale + 32 int8 values.</summary>
    public const int Q8_0BlockBytes = 2 + 32;

    /// <summary>Bytes of one Q4_0 block: fp16 scale + 16 bytes of packed 4-bit values.</summary>
    public const int Q4_0BlockBytes = 2 + 16;

    /// <summary>Rows per interleaved group of the interleaved layouts (Q8_0x16 … Q6_Kx16).</summary>
    public const int InterleavedRows = 16;

    /// <summary>Weights per K-quant super-block (ggml's QK_K).</summary>
    public const int KQuantBlock = 256;

    /// <summary>Bytes of one Q4_K super-block: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles.</summary>
    public const int Q4_KBlockBytes = 2 + 2 + 12 + 128;

    /// <summary>Bytes of one Q5_K super-block: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins, 32 bytes of high bits, 128 bytes of nibbles.</summary>
    public const int Q5_KBlockBytes = 2 + 2 + 12 + 32 + 128;

    /// <summary>Bytes of one Q6_K super-block: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales, fp16 d.</summary>
    public const int Q6_KBlockBytes = 128 + 64 + 16 + 2;

    /// <summary>True for block-quantized storage types, the row-interleaved ones included.</summary>
    public static bool IsQuantized(this DType dtype) => dtype is DType.Q8_0 or DType.Q4_0 || dtype.IsKQuant() || dtype.IsInterleaved();

    /// <summary>True for the K-quant storage types (Q4_K, Q5_K, Q6_K), which are read from files and never produced by
    /// <c>Ops.Quantize</c>.</summary>
    public static bool IsKQuant(this DType dtype) => dtype is DType.Q4_K or DType.Q5_K or DType.Q6_K;

    /// <summary>True for the row-interleaved layouts Q8_0x16, Q4_0x16, Q4_Kx16, Q5_Kx16 and Q6_Kx16 (made by
    /// <c>Ops.InterleaveRows</c>, read by the matmuls and Dequantize of a backend that offers
    /// <see cref="IRowInterleaving"/>; no file format stores them).</summary>
    public static bool IsInterleaved(this DType dtype) => dtype is DType.Q8_0x16 or DType.Q4_0x16 or DType.Q4_Kx16 or DType.Q5_Kx16 or DType.Q6_Kx16;

    /// <summary>True for the types that have a row-interleaved layout (Q8_0, Q4_0 and the K-quants).</summary>
    public static bool HasInterleavedLayout(this DType dtype) => dtype is DType.Q8_0 or DType.Q4_0 || dtype.IsKQuant();

    /// <summary>The interleaved layout of Q8_0, Q4_0, Q4_K, Q5_K or Q6_K (Q8_0x16 … Q6_Kx16).</summary>
    public static DType Interleaved(this DType dtype) => dtype switch
    {
        DType.Q8_0 => DType.Q8_0x16,
        DType.Q4_0 => DType.Q4_0x16,
        DType.Q4_K => DType.Q4_Kx16,
        DType.Q5_K => DType.Q5_Kx16,
        DType.Q6_K => DType.Q6_Kx16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "only Q8_0, Q4_0 and the K-quants have an interleaved layout"),
    };

    /// <summary>The file layout of an interleaved type (Q8_0x16 → Q8_0, …, Q6_Kx16 → Q6_K); other types unchanged.</summary>
    public static DType FileLayout(this DType dtype) => dtype switch
    {
        DType.Q8_0x16 => DType.Q8_0,
        DType.Q4_0x16 => DType.Q4_0,
        DType.Q4_Kx16 => DType.Q4_K,
        DType.Q5_Kx16 => DType.Q5_K,
        DType.Q6_Kx16 => DType.Q6_K,
        _ => dtype,
    };

    /// <summary>Weights per block of a quantized or interleaved type (32, or 256 for the K-quants).</summary>
    public static int BlockElements(this DType dtype) => dtype.FileLayout().IsKQuant() ? KQuantBlock : QuantBlock;

    /// <summary>Bytes per block of a quantized type.</summary>
    public static int BlockBytes(this DType dtype) => dtype switch
    {
        DType.Q8_0 or DType.Q8_0x16 => Q8_0BlockBytes,
        DType.Q4_0 or DType.Q4_0x16 => Q4_0BlockBytes,
        DType.Q4_K or DType.Q4_Kx16 => Q4_KBlockBytes,
        DType.Q5_K or DType.Q5_Kx16 => Q5_KBlockBytes,
        DType.Q6_K or DType.Q6_Kx16 => Q6_KBlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a block-quantized dtype"),
    };

    /// <summary>True for floating-point compute types (F32, F64).</summary>
    public static bool IsCompute(this DType dtype) => dtype is DType.F32 or DType.F64;

    /// <summary>Bytes needed to store <paramref name="count"/> elements of this type.</summary>
    public static long ByteCount(this DType dtype, long count) => dtype switch
    {
        DType.F32 or DType.I32 => count * 4,
        DType.F64 => count * 8,
        DType.BF16 or DType.F16 => count * 2,
        DType.Q8_0 or DType.Q4_0 or DType.Q4_K or DType.Q5_K or DType.Q6_K or DType.Q8_0x16 or DType.Q4_0x16
            or DType.Q4_Kx16 or DType.Q5_Kx16 or DType.Q6_Kx16 => BlockCount(dtype, count) * dtype.BlockBytes(),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    private static long BlockCount(DType dtype, long count)
    {
        int per = dtype.BlockElements();
        if (count % per != 0)
            throw new ArgumentException($"{dtype} needs an element count that is a multiple of {per}, got {count}");
        return count / per;
    }
}
