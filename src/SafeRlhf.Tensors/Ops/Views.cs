namespace SafeRlhf.Tensors;

// View ops: share storage, no copy. Backward maps the gradient back through the inverse view.
public static partial class Ops
{
    private static Tensor RawView(Tensor x, int[] dims, long[] strides, long offset) =>
        new(x.Storage, new Shape(dims, strides), offset, x.DType, x.Device, addRef: true);

    /// <summary>A contiguous copy, or x itself (a new view of it) when already contiguous.</summary>
    public static Tensor Contiguous(this Tensor x)
    {
        x.ThrowIfDisposed("Contiguous");
        if (x.IsContiguous) return Record("Contiguous", RawView(x, x.Shape.ToArray(), Shape.ContiguousStrides(x.Shape.Dims), x.Offset), [x], [], dy => [dy]);
        var y = OutputLike(x);
        x.Backend.Copy(x, y);
        return Record("Contiguous", y, [x], [], dy => [dy]);
    }

    /// <summary>Same data with new dims (one dim may be −1). A view when x is contiguous, else a copy.</summary>
    public static Tensor Reshape(this Tensor x, params int[] dims)
    {
        x.ThrowIfDisposed("Reshape");
        dims = ResolveDims("Reshape", x.Shape, dims);
        var src = x.IsContiguous ? x : x.Contiguous();
        var y = RawView(src, dims, Shape.ContiguousStrides(dims), src.Offset);
        var inDims = x.Shape.ToArray();
        var result = Record("Reshape", y, [x], [], dy => [dy.Reshape(inDims)]);
        return ReferenceEquals(src, x) ? result : Finish(result, src);
    }

    private static int[] ResolveDims(string op, Shape shape, int[] dims)
    {
        dims = (int[])dims.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] == -1)
            {
                if (infer >= 0) throw new TensorShapeException($"{op}: more than one −1 in [{string.Join(", ", dims)}]");
                infer = i;
            }
            else known *= dims[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || shape.Numel % known != 0)
                throw new TensorShapeException($"{op}: cannot reshape {shape} to [{string.Join(", ", dims)}]");
            dims[infer] = (int)(shape.Numel / known);
        }
        if (new Shape(dims).Numel != shape.Numel)
            throw new TensorShapeException($"{op}: cannot reshape {shape} ({shape.Numel} elements) to [{string.Join(", ", dims)}]");
        return dims;
    }

    /// <summary>Swaps two axes (a view).</summary>
    public static Tensor Transpose(this Tensor x, int axis0, int axis1)
    {
        x.ThrowIfDisposed("Transpose");
        int a0 = x.Shape.NormalizeAxis(axis0), a1 = x.Shape.NormalizeAxis(axis1);
        var dims = x.Shape.ToArray();
        var strides = x.Shape.StridesArray();
        (dims[a0], dims[a1]) = (dims[a1], dims[a0]);
        (strides[a0], strides[a1]) = (strides[a1], strides[a0]);
        return Record("Transpose", RawView(x, dims, strides, x.Offset), [x], [], dy => [dy.Transpose(a0, a1)]);
    }

    /// <summary>Reorders the axes (a view): output axis i is input axis perm[i].</summary>
    public static Tensor Permute(this Tensor x, params int[] perm)
    {
        x.ThrowIfDisposed("Permute");
        if (perm.Length != x.Rank || perm.Distinct().Count() != perm.Length || perm.Any(p => p < 0 || p >= x.Rank))
            throw new TensorShapeException($"Permute: [{string.Join(", ", perm)}] is not a permutation of the axes of {x.Shape}");
        var dims = new int[x.Rank];
        var strides = new long[x.Rank];
        var inverse = new int[x.Rank];
        for (int i = 0; i < perm.Length; i++)
        {
            dims[i] = x.Shape[perm[i]];
            strides[i] = x.Shape.Stride(perm[i]);
            inverse[perm[i]] = i;
        }
        return Record("Permute", RawView(x, dims, strides, x.Offset), [x], [], dy => [dy.Permute(inverse)]);
    }

    /// <summary>Elements [start, start + length) along an axis (a view).</summary>
    public static Tensor Narrow(this Tensor x, int axis, int start, int length)
    {
        x.ThrowIfDisposed("Narrow");
        int a = x.Shape.NormalizeAxis(axis);
        if (start < 0 || length < 0 || start + length > x.Shape[a])
            throw new TensorShapeException($"Narrow: range [{start}, {start + length}) out of bounds for axis {a} of {x.Shape}");
        var dims = x.Shape.ToArray();
        dims[a] = length;
        var y = RawView(x, dims, x.Shape.StridesArray(), x.Offset + start * x.Shape.Stride(a));
        var inDims = x.Shape.ToArray();
        return Record("Narrow", y, [x], [], dy =>
        {
            var dx = Zeros(dy.Device, dy.DType, inDims);
            using var window = RawView(dx, dy.Shape.ToArray(), dx.Shape.StridesArray(), dx.Offset + start * dx.Shape.Stride(a));
            dy.Backend.Copy(dy, window);
            return [dx];
        });
    }

    /// <summary>Python-style slice [start, end) along an axis; negative bounds count from the end.</summary>
    public static Tensor Slice(this Tensor x, int axis, int start, int end)
    {
        int a = x.Shape.NormalizeAxis(axis);
        int n = x.Shape[a];
        if (start < 0) start += n;
        if (end < 0) end += n;
        start = Math.Clamp(start, 0, n);
        end = Math.Clamp(end, start, n);
        return x.Narrow(a, start, end - start);
    }

    /// <summary>Index <paramref name="index"/> along an axis, removing that axis (a view).</summary>
    public static Tensor Select(this Tensor x, int axis, int index)
    {
        int a = x.Shape.NormalizeAxis(axis);
        var dims = x.Shape.ToArray().Where((_, i) => i != a).ToArray();
        return x.Narrow(a, index, 1).Reshape(dims);
    }

    /// <summary>Inserts an axis of extent 1.</summary>
    public static Tensor Unsqueeze(this Tensor x, int axis)
    {
        int a = axis < 0 ? axis + x.Rank + 1 : axis;
        if (a < 0 || a > x.Rank) throw new TensorShapeException($"Unsqueeze: axis {axis} out of range for {x.Shape}");
        var dims = x.Shape.ToArray().ToList();
        dims.Insert(a, 1);
        var strides = x.Shape.StridesArray().ToList();
        strides.Insert(a, a < x.Rank ? x.Shape.Stride(a) * x.Shape[a] : 1);
        var inDims = x.Shape.ToArray();
        return Record("Unsqueeze", RawView(x, [.. dims], [.. strides], x.Offset), [x], [], dy => [dy.Reshape(inDims)]);
    }

    /// <summary>Removes an axis of extent 1.</summary>
    public static Tensor Squeeze(this Tensor x, int axis)
    {
        int a = x.Shape.NormalizeAxis(axis);
        if (x.Shape[a] != 1) throw new TensorShapeException($"Squeeze: axis {a} of {x.Shape} has extent {x.Shape[a]}, not 1");
        var dims = x.Shape.ToArray().Where((_, i) => i != a).ToArray();
        var strides = x.Shape.StridesArray().Where((_, i) => i != a).ToArray();
        var inDims = x.Shape.ToArray();
        return Record("Squeeze", RawView(x, dims, strides, x.Offset), [x], [], dy => [dy.Reshape(inDims)]);
    }

    /// <summary>Broadcasts to <paramref name="dims"/> (a view with stride 0 on broadcast axes).</summary>
    public static Tensor Expand(this Tensor x, params int[] dims)
    {
        var y = BroadcastView("Expand", x, dims);
        var inDims = x.Shape.ToArray();
        return Record("Expand", y, [x], [], dy => [SumTo(dy, inDims)]);
    }

    internal static Tensor BroadcastView(string op, Tensor x, int[] dims)
    {
        x.ThrowIfDisposed(op);
        if (dims.Length < x.Rank) throw new TensorShapeException($"{op}: cannot broadcast {x.Shape} to [{string.Join(", ", dims)}]");
        var strides = new long[dims.Length];
        int lead = dims.Length - x.Rank;
        for (int i = 0; i < dims.Length; i++)
        {
            if (i < lead) { strides[i] = 0; continue; }
            int d = x.Shape[i - lead];
            if (d == dims[i]) strides[i] = x.Shape.Stride(i - lead);
            else if (d == 1) strides[i] = 0;
            else throw new TensorShapeException($"{op}: cannot broadcast {x.Shape} to [{string.Join(", ", dims)}]");
        }
        return RawView(x, (int[])dims.Clone(), strides, x.Offset);
    }

    /// <summary>Sums a broadcast gradient back to <paramref name="dims"/> (the inverse of broadcasting).</summary>
    public static Tensor SumTo(Tensor x, int[] dims)
    {
        if (x.Shape.Dims.SequenceEqual(dims)) return x;
        int lead = x.Rank - dims.Length;
        if (lead < 0) throw new TensorShapeException($"SumTo: cannot reduce {x.Shape} to [{string.Join(", ", dims)}]");
        var keep = new int[x.Rank];
        for (int i = 0; i < x.Rank; i++) keep[i] = i < lead ? 1 : dims[i - lead];
        var src = x.Contiguous();
        var y = Output(x.Device, x.DType, keep);
        x.Backend.ReduceSum(src, y);
        var result = y.Reshape(dims);
        return Finish(Record("SumTo", result, [x], [], dy => [BroadcastView("SumTo", dy, x.Shape.ToArray()).Contiguous()]), src, y);
    }
}
