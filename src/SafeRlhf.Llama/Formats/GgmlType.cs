using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>The ggml tensor types a GGUF file may hold that this reader accepts, with their ggml numbers.</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13,
    Q6_K = 14, I32 = 26, F64 = 28, BF16 = 30,
}

/// <summary>How each accepted ggml type is held: F32, F16, BF16, F64, I32, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K keep their
/// bytes (a <see cref="DType"/> of the same layout); Q4_1, Q5_0, Q5_1, Q2_K and Q3_K are dequantized to F32 when the file
/// is read (<see cref="GgmlLoadTimeBlocks"/>), since no kernel reads them.</summary>
public static class GgmlTypes
{
    /// <summary>The names of the accepted types, for messages.</summary>
    public static string Supported => string.Join(", ", Enum.GetNames<GgmlType>());

    /// <summary>True when <paramref name="number"/> is an accepted ggml type.</summary>
    public static bool TryFrom(uint number, out GgmlType type)
    {
        type = (GgmlType)number;
        return Enum.IsDefined(type);
    }

    /// <summary>The stored type that keeps these bytes, or null when the type is dequantized at load.</summary>
    public static DType? Kept(GgmlType type) => type switch
    {
        GgmlType.F32 => DType.F32,
        GgmlType.F16 => DType.F16,
        GgmlType.BF16 => DType.BF16,
        GgmlType.F64 => DType.F64,
        GgmlType.I32 => DType.I32,
        GgmlType.Q8_0 => DType.Q8_0,
        GgmlType.Q4_0 => DType.Q4_0,
        GgmlType.Q4_K => DType.Q4_K,
        GgmlType.Q5_K => DType.Q5_K,
        GgmlType.Q6_K => DType.Q6_K,
        _ => null,
    };

    /// <summary>The ggml number of a kept type.</summary>
    public static uint Number(DType dtype) => dtype switch
    {
        DType.F32 => (uint)GgmlType.F32,
        DType.F16 => (uint)GgmlType.F16,
        DType.Q4_0 => (uint)GgmlType.Q4_0,
        DType.Q8_0 => (uint)GgmlType.Q8_0,
        DType.Q4_K => (uint)GgmlType.Q4_K,
        DType.Q5_K => (uint)GgmlType.Q5_K,
        DType.Q6_K => (uint)GgmlType.Q6_K,
        DType.I32 => (uint)GgmlType.I32,
        DType.F64 => (uint)GgmlType.F64,
        DType.BF16 => (uint)GgmlType.BF16,
        _ => throw new ArgumentException($"{dtype} has no GGUF type"),
    };

    /// <summary>Weights per block (1 for the unblocked types).</summary>
    public static int BlockElements(GgmlType type) => type switch
    {
        GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q5_0 or GgmlType.Q5_1 or GgmlType.Q8_0 => 32,
        GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K => DTypeInfo.KQuantBlock,
        _ => 1,
    };

    /// <summary>Bytes per block (per element for the unblocked types).</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 or GgmlType.I32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.F64 => 8,
        GgmlType.Q4_1 => GgmlLoadTimeBlocks.Q4_1Bytes,
        GgmlType.Q5_0 => GgmlLoadTimeBlocks.Q5_0Bytes,
        GgmlType.Q5_1 => GgmlLoadTimeBlocks.Q5_1Bytes,
        GgmlType.Q2_K => GgmlLoadTimeBlocks.Q2_KBytes,
        GgmlType.Q3_K => GgmlLoadTimeBlocks.Q3_KBytes,
        _ => Kept(type)!.Value.BlockBytes(),
    };

    /// <summary>Bytes of a tensor of <paramref name="count"/> elements, or null when the count is not a whole number
    /// of blocks.</summary>
    public static long? ByteCount(GgmlType type, long count)
    {
        int per = BlockElements(type);
        return count % per != 0 ? null : count / per * BlockBytes(type);
    }
}
