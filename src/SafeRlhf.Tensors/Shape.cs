namespace SafeRlhf.Tensors;

/// <summary>Dimensions and element strides of a tensor view. Contiguous shapes are row-major.</summary>
public sealed class Shape : IEquatable<Shape>
{
    private readonly int[] _dims;
    private readonly long[] _strides;

    /// <summary>A contiguous row-major shape.</summary>
    public Shape(params int[] dims) : this(dims, ContiguousStrides(dims)) { }

    /// <summary>A shape with explicit element strides (a stride of 0 broadcasts).</summary>
    public Shape(int[] dims, long[] strides)
    {
        if (dims.Length != strides.Length)
            throw new ArgumentException($"shape rank {dims.Length} but {strides.Length} strides");
        foreach (int d in dims)
            if (d < 0) throw new ArgumentException($"negative dimension in [{string.Join(", ", dims)}]");
        _dims = (int[])dims.Clone();
        _strides = (long[])strides.Clone();
    }

    public int Rank => _dims.Length;
    public ReadOnlySpan<int> Dims => _dims;
    public ReadOnlySpan<long> Strides => _strides;
    public int this[int axis] => _dims[NormalizeAxis(axis)];
    public long Stride(int axis) => _strides[NormalizeAxis(axis)];

    /// <summary>Number of elements.</summary>
    public long Numel
    {
        get { long n = 1; foreach (int d in _dims) n *= d; return n; }
    }

    /// <summary>True when the strides are the row-major strides of the dims.</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int i = _dims.Length - 1; i >= 0; i--)
            {
                if (_dims[i] != 1 && _strides[i] != expected) return false;
                expected *= _dims[i];
            }
            return true;
        }
    }

    /// <summary>True when every entry along axis 0 is itself contiguous and entries do not overlap, whatever the
    /// distance between them (e.g. the filled part [B, S, ..] of a KV cache [B, capacity, ..]).</summary>
    public bool IsPackedBelowFirstAxis
    {
        get
        {
            if (_dims.Length == 0) return true;
            long expected = 1;
            for (int i = _dims.Length - 1; i >= 1; i--)
            {
                if (_dims[i] != 1 && _strides[i] != expected) return false;
                expected *= _dims[i];
            }
            return _dims[0] <= 1 || _strides[0] >= expected;
        }
    }

    /// <summary>Element distance between entries along axis 0 (the packed size when there is only one entry).</summary>
    public long FirstAxisStride
    {
        get
        {
            long packed = 1;
            for (int i = 1; i < _dims.Length; i++) packed *= _dims[i];
            return _dims.Length == 0 || _dims[0] <= 1 ? packed : _strides[0];
        }
    }

    public int[] ToArray() => (int[])_dims.Clone();
    public long[] StridesArray() => (long[])_strides.Clone();

    /// <summary>Axis in [0, Rank) from a possibly negative axis.</summary>
    public int NormalizeAxis(int axis)
    {
        int a = axis < 0 ? axis + _dims.Length : axis;
        if (a < 0 || a >= _dims.Length)
            throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} out of range for shape {this}");
        return a;
    }

    public static long[] ContiguousStrides(ReadOnlySpan<int> dims)
    {
        var strides = new long[dims.Length];
        long s = 1;
        for (int i = dims.Length - 1; i >= 0; i--) { strides[i] = s; s *= dims[i]; }
        return strides;
    }

    /// <summary>Same dims (strides are ignored).</summary>
    public bool SameDims(Shape other) => _dims.AsSpan().SequenceEqual(other._dims);

    public bool Equals(Shape? other) => other is not null && SameDims(other);
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (int d in _dims) h.Add(d);
        return h.ToHashCode();
    }

    public override string ToString() => "[" + string.Join(", ", _dims) + "]";

    /// <summary>The broadcast of two dims lists (NumPy rules), or an exception naming the op.</summary>
    public static int[] Broadcast(string op, Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var dims = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Rank ? 1 : a._dims[i - (rank - a.Rank)];
            int db = i < rank - b.Rank ? 1 : b._dims[i - (rank - b.Rank)];
            if (da != db && da != 1 && db != 1)
                throw new TensorShapeException($"{op}: shapes {a} and {b} cannot be broadcast together");
            dims[i] = da == 1 ? db : da;
        }
        return dims;
    }
}
