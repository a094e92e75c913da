using CommunityToolkit.HighPerformance.Buffers;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The rows of an elementwise op over strided (or broadcast, stride 0) operands of the same dims: the dims are
/// coalesced (size-1 axes dropped, axes merged where every operand is packed across them) and the last remaining axis
/// is the row. Kernels then run one vectorised call per row.</summary>
internal sealed class StridedRows
{
    private readonly int[] _outer;          // coalesced dims above the row
    private readonly long[][] _strides;     // per operand, its stride on each outer axis
    private readonly long[] _start;         // per operand, its first element

    /// <summary>Elements per row.</summary>
    public int Length { get; }
    /// <summary>Per operand, its stride along the row (1 packed, 0 broadcast, else strided).</summary>
    public long[] RowStride { get; }

    public StridedRows(ReadOnlySpan<int> dims, params ReadOnlySpan<Tensor> operands)
        : this(dims, Layouts(operands)) { }

    private static (long[] Strides, long Offset)[] Layouts(ReadOnlySpan<Tensor> operands)
    {
        var layouts = new (long[], long)[operands.Length];
        for (int o = 0; o < operands.Length; o++) layouts[o] = (operands[o].Shape.StridesArray(), operands[o].Offset);
        return layouts;
    }

    /// <param name="dims">The dims every operand is viewed with.</param>
    /// <param name="operands">Per operand, its strides over <paramref name="dims"/> and its first element.</param>
    public StridedRows(ReadOnlySpan<int> dims, (long[] Strides, long Offset)[] operands)
    {
        var keptDims = new List<int>();
        var keptStrides = new List<long[]>();
        for (int axis = 0; axis < dims.Length; axis++)
        {
            if (dims[axis] == 1) continue;
            var s = new long[operands.Length];
            for (int o = 0; o < operands.Length; o++) s[o] = operands[o].Strides[axis];
            int last = keptDims.Count - 1;
            if (last >= 0 && Mergeable(keptStrides[last], s, dims[axis]))
            {
                keptDims[last] *= dims[axis];
                keptStrides[last] = s;
                continue;
            }
            keptDims.Add(dims[axis]);
            keptStrides.Add(s);
        }
        if (keptDims.Count == 0)
        {
            keptDims.Add(1);
            keptStrides.Add(new long[operands.Length]);
        }
        Length = keptDims[^1];
        RowStride = keptStrides[^1];
        _outer = keptDims.Take(keptDims.Count - 1).ToArray();
        _strides = Enumerable.Range(0, operands.Length).Select(o => keptStrides.Take(_outer.Length).Select(s => s[o]).ToArray()).ToArray();
        _start = new long[operands.Length];
        for (int o = 0; o < operands.Length; o++) _start[o] = operands[o].Offset;
    }

    private static bool Mergeable(long[] outer, long[] inner, int innerDim)
    {
        for (int o = 0; o < outer.Length; o++)
            if (outer[o] != inner[o] * innerDim) return false;
        return true;
    }

    /// <summary>For each row in row-major order, the first element of every operand (one array, updated in place).</summary>
    public IEnumerable<long[]> Starts()
    {
        long count = 1;
        foreach (int d in _outer) count *= d;
        if (Length == 0 || count == 0) yield break;
        var index = new int[_outer.Length];
        var at = (long[])_start.Clone();
        for (long r = 0; r < count; r++)
        {
            yield return at;
            for (int axis = _outer.Length - 1; axis >= 0; axis--)
            {
                for (int o = 0; o < at.Length; o++) at[o] += _strides[o][axis];
                if (++index[axis] < _outer[axis]) break;
                for (int o = 0; o < at.Length; o++) at[o] -= _strides[o][axis] * _outer[axis];
                index[axis] = 0;
            }
        }
    }

    /// <summary>One row of <paramref name="data"/> as a packed span: the storage itself when the row is packed, otherwise
    /// gathered into <paramref name="scratch"/> (a broadcast scalar is filled, a strided row is copied).</summary>
    public static ReadOnlySpan<T> Read<T>(Span<T> data, long start, long stride, int length, MemoryOwner<T> scratch)
    {
        if (stride == 1) return data.Slice(checked((int)start), length);
        var s = scratch.Span[..length];
        if (stride == 0)
        {
            s.Fill(data[checked((int)start)]);
            return s;
        }
        for (int i = 0; i < length; i++) s[i] = data[checked((int)(start + i * stride))];
        return s;
    }

    /// <summary>Writes a packed row to a row of <paramref name="data"/> with the given stride (not 0).</summary>
    public static void Write<T>(ReadOnlySpan<T> row, Span<T> data, long start, long stride)
    {
        if (stride == 1)
        {
            row.CopyTo(data[checked((int)start)..]);
            return;
        }
        for (int i = 0; i < row.Length; i++) data[checked((int)(start + i * stride))] = row[i];
    }
}
