using CommunityToolkit.HighPerformance.Buffers;
using SafeRlhf.Tensors;
using TP = System.Numerics.Tensors.TensorPrimitives;

namespace SafeRlhf.Backends.Cpu.Native;

// Copies (strided either side) and dtype conversions between F32, F64, BF16, F16 and I32, and fills.
public sealed partial class NativeBackend
{
    public void Copy(Tensor src, Tensor dst)
    {
        if (!src.Shape.SameDims(dst.Shape)) throw new TensorShapeException($"Copy: {src.Shape} vs {dst.Shape}");
        if (src.DType.IsQuantized() || dst.DType.IsQuantized())
        {
            if (src.DType != dst.DType || !src.IsContiguous || !dst.IsContiguous)
                throw new TensorDTypeException($"Copy: quantized tensors copy only as contiguous {src.DType} → {dst.DType}");
        }
        if (src.DType == dst.DType && src.IsContiguous && dst.IsContiguous)
        {
            int bytes = checked((int)src.DType.ByteCount(src.Numel));
            RawBytes(src)[..bytes].CopyTo(RawBytes(dst));
            return;
        }
        var rows = new StridedRows(dst.Shape.Dims, dst, src);
        if (src.DType == dst.DType)
        {
            switch (src.DType.ByteCount(1))
            {
                case 2: CopyRows<ushort>(rows, src, dst); return;
                case 4: CopyRows<int>(rows, src, dst); return;
                case 8: CopyRows<long>(rows, src, dst); return;
            }
            throw Unsupported("Copy", src, dst);
        }
        ConvertRows(rows, src, dst);
    }

    /// <summary>A same-dtype strided copy, moving elements as raw values of <typeparamref name="T"/>'s size.</summary>
    private static void CopyRows<T>(StridedRows rows, Tensor src, Tensor dst) where T : unmanaged
    {
        var s = ((CpuStorage)src.Storage).As<T>();
        var d = ((CpuStorage)dst.Storage).As<T>();
        int n = rows.Length;
        using var scratch = MemoryOwner<T>.Allocate(n);
        foreach (var at in rows.Starts())
            StridedRows.Write(StridedRows.Read(s, at[1], rows.RowStride[1], n, scratch), d, at[0], rows.RowStride[0]);
    }

    /// <summary>A converting copy: each source row is widened to double, then narrowed to the destination dtype with the
    /// reference backend's rounding (I32 rounds to nearest and checks the range, BF16 rounds to nearest even).</summary>
    private static void ConvertRows(StridedRows rows, Tensor src, Tensor dst)
    {
        int n = rows.Length;
        using var wide = MemoryOwner<double>.Allocate(n);
        foreach (var at in rows.Starts())
        {
            ReadRow(src, at[1], rows.RowStride[1], wide.Span);
            WriteRow(wide.Span, dst, at[0], rows.RowStride[0]);
        }
    }

    private static void ReadRow(Tensor t, long start, long stride, Span<double> row)
    {
        var s = (CpuStorage)t.Storage;
        if (t.DType == DType.F32 && stride == 1)
        {
            TP.ConvertTruncating<float, double>(s.As<float>().Slice(checked((int)start), row.Length), row);
            return;
        }
        for (int i = 0; i < row.Length; i++)
        {
            int at = checked((int)(start + i * stride));
            row[i] = t.DType switch
            {
                DType.F32 => s.As<float>()[at],
                DType.F64 => s.As<double>()[at],
                DType.I32 => s.As<int>()[at],
                DType.F16 => (double)s.As<Half>()[at],
                DType.BF16 => Bf16.ToFloat(s.As<ushort>()[at]),
                _ => throw Unsupported("Copy", t),
            };
        }
    }

    private static void WriteRow(ReadOnlySpan<double> row, Tensor t, long start, long stride)
    {
        var s = (CpuStorage)t.Storage;
        if (t.DType == DType.F32 && stride == 1)
        {
            TP.ConvertTruncating<double, float>(row, s.As<float>().Slice(checked((int)start), row.Length));
            return;
        }
        for (int i = 0; i < row.Length; i++)
        {
            int at = checked((int)(start + i * stride));
            switch (t.DType)
            {
                case DType.F32: s.As<float>()[at] = (float)row[i]; break;
                case DType.F64: s.As<double>()[at] = row[i]; break;
                case DType.I32: s.As<int>()[at] = checked((int)Math.Round(row[i])); break;
                case DType.F16: s.As<Half>()[at] = (Half)row[i]; break;
                case DType.BF16: s.As<ushort>()[at] = Bf16.FromFloat((float)row[i]); break;
                default: throw Unsupported("Copy", t);
            }
        }
    }

    public void Fill(Tensor dst, double value)
    {
        if (IsF32(dst))
        {
            Floats(dst).Fill((float)value);
            return;
        }
        if (dst.DType.IsQuantized()) throw Unsupported("Fill", dst);
        var rows = new StridedRows(dst.Shape.Dims, dst);
        using var row = MemoryOwner<double>.Allocate(rows.Length);
        row.Span.Fill(value);
        foreach (var at in rows.Starts()) WriteRow(row.Span, dst, at[0], rows.RowStride[0]);
    }
}
