using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Llama.Formats;

/// <summary>One tensor as stored in a weight file: row-major dims (outermost first) and the raw little-endian
/// bytes. <see cref="Data"/> may point into a memory-mapped file and is valid while its <see cref="WeightFile"/>
/// is open.</summary>
public sealed class RawTensor
{
    /// <summary>Wraps stored bytes; the byte count must match <paramref name="dtype"/> and <paramref name="dims"/>.</summary>
    public RawTensor(string name, DType dtype, int[] dims, ReadOnlyMemory<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        long expected = ByteCount(dtype, dims);
        if (data.Length != expected)
            throw new ArgumentException($"tensor '{name}' {dtype} [{string.Join(", ", dims)}] needs {expected} bytes, got {data.Length}", nameof(data));
        Name = name;
        DType = dtype;
        Dims = dims;
        Data = data;
    }

    /// <summary>Tensor name (Meta naming after conversion, e.g. layers.0.attention.wq.weight).</summary>
    public string Name { get; }

    /// <summary>Element type of <see cref="Data"/>.</summary>
    public DType DType { get; }

    /// <summary>Row-major dims, outermost first; empty for a scalar.</summary>
    public int[] Dims { get; }

    /// <summary>Raw little-endian bytes.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>Number of elements.</summary>
    public long Numel => Count(Dims);

    /// <summary>The same data under another name.</summary>
    public RawTensor WithName(string name) => new(name, DType, Dims, Data);

    /// <summary>Elements as float (F32, F64, F16, BF16, I32 are converted).</summary>
    public float[] ToSingleArray()
    {
        var span = Data.Span;
        var result = new float[Numel];
        switch (DType)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(span).CopyTo(result); break;
            case DType.F64: for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(span[(8 * i)..]); break;
            case DType.F16: for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(span[(2 * i)..]); break;
            case DType.BF16: for (int i = 0; i < result.Length; i++) result[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(span[(2 * i)..])); break;
            case DType.I32: for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadInt32LittleEndian(span[(4 * i)..]); break;
            default: throw new NotSupportedException($"tensor '{Name}': {DType} cannot be read as float without dequantization");
        }
        return result;
    }

    /// <summary>Elements as double (F64 exactly; other float types and I32 widened).</summary>
    public double[] ToDoubleArray()
    {
        if (DType == DType.F64)
        {
            var result = new double[Numel];
            MemoryMarshal.Cast<byte, double>(Data.Span).CopyTo(result);
            return result;
        }
        return Array.ConvertAll(ToSingleArray(), v => (double)v);
    }

    /// <summary>Elements of an I32 tensor.</summary>
    public int[] ToInt32Array()
    {
        if (DType != DType.I32) throw new NotSupportedException($"tensor '{Name}' is {DType}, not I32");
        var result = new int[Numel];
        MemoryMarshal.Cast<byte, int>(Data.Span).CopyTo(result);
        return result;
    }

    /// <summary>The float value of a bfloat16 bit pattern.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Product of dims (1 for a scalar).</summary>
    public static long Count(ReadOnlySpan<int> dims)
    {
        long n = 1;
        foreach (int d in dims) n *= d;
        return n;
    }

    /// <summary>Bytes that a tensor of this type and these dims occupies, or false when the count overflows 64 bits
    /// (a header's dims are checked with this before anything else uses them).</summary>
    public static bool TryByteCount(DType dtype, ReadOnlySpan<int> dims, out long bytes)
    {
        bytes = 0;
        long n = 1;
        foreach (int d in dims)
        {
            if (d < 0) return false;
            if (d != 0 && n > long.MaxValue / 8 / d) return false;
            n *= d;
        }
        bytes = dtype.ByteCount(n);
        return true;
    }

    /// <summary>Bytes that a tensor of this type and these dims occupies.</summary>
    public static long ByteCount(DType dtype, ReadOnlySpan<int> dims) => dtype.ByteCount(Count(dims));

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Dims)}]";
}
