using System.Runtime.InteropServices;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Reference;

/// <summary>Reads and writes tensor elements as doubles in logical row-major order, honouring strides,
/// offset and dtype (F32, F64, BF16, F16, I32). The reference kernels work on these double arrays.</summary>
internal static class Elements
{
    public static double[] Load(Tensor t)
    {
        var values = new double[t.Numel];
        var storage = (CpuStorage)t.Storage;
        long i = 0;
        foreach (long at in Offsets(t.Shape, t.Offset)) values[i++] = Read(storage, t.DType, at);
        return values;
    }

    public static int[] LoadIndex(Tensor t)
    {
        if (t.DType != DType.I32) throw new TensorDTypeException($"index tensor must be I32, got {t.DType}");
        var values = new int[t.Numel];
        var data = ((CpuStorage)t.Storage).As<int>();
        long i = 0;
        foreach (long at in Offsets(t.Shape, t.Offset)) values[i++] = data[(int)at];
        return values;
    }

    public static void Store(Tensor t, ReadOnlySpan<double> values)
    {
        if (values.Length != t.Numel) throw new ArgumentException($"Store: {values.Length} values for tensor {t.Shape}");
        var storage = (CpuStorage)t.Storage;
        int i = 0;
        foreach (long at in Offsets(t.Shape, t.Offset)) Write(storage, t.DType, at, values[i++]);
    }

    /// <summary>Storage element offsets of every logical element, row-major.</summary>
    public static IEnumerable<long> Offsets(Shape shape, long offset)
    {
        long n = shape.Numel;
        if (n == 0) yield break;
        int rank = shape.Rank;
        var index = new int[rank];
        var dims = shape.ToArray();
        var strides = shape.StridesArray();
        long at = offset;
        for (long k = 0; k < n; k++)
        {
            yield return at;
            for (int axis = rank - 1; axis >= 0; axis--)
            {
                index[axis]++;
                at += strides[axis];
                if (index[axis] < dims[axis]) break;
                at -= strides[axis] * dims[axis];
                index[axis] = 0;
            }
        }
    }

    private static double Read(CpuStorage s, DType dtype, long at) => dtype switch
    {
        DType.F32 => s.As<float>()[(int)at],
        DType.F64 => s.As<double>()[(int)at],
        DType.I32 => s.As<int>()[(int)at],
        DType.F16 => (double)s.As<Half>()[(int)at],
        DType.BF16 => Bf16.ToFloat(s.As<ushort>()[(int)at]),
        _ => throw new TensorDTypeException($"reference backend cannot read {dtype} elementwise"),
    };

    private static void Write(CpuStorage s, DType dtype, long at, double value)
    {
        switch (dtype)
        {
            case DType.F32: s.As<float>()[(int)at] = (float)value; break;
            case DType.F64: s.As<double>()[(int)at] = value; break;
            case DType.I32: s.As<int>()[(int)at] = checked((int)Math.Round(value)); break;
            case DType.F16: s.As<Half>()[(int)at] = (Half)value; break;
            case DType.BF16: s.As<ushort>()[(int)at] = Bf16.FromFloat((float)value); break;
            default: throw new TensorDTypeException($"reference backend cannot write {dtype} elementwise");
        }
    }

    public static Span<byte> RawBytes(Tensor t) =>
        ((CpuStorage)t.Storage).Bytes[(int)t.DType.ByteCount(t.Offset)..];

    public static Span<T> Cast<T>(Span<byte> bytes) where T : unmanaged => MemoryMarshal.Cast<byte, T>(bytes);
}
