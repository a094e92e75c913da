namespace SafeRlhf.Tensors;

// Concatenation and stacking; the backward narrows the gradient back into pieces.
public static partial class Ops
{
    /// <summary>Joins tensors along an existing axis.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> parts, int axis)
    {
        if (parts.Count == 0) throw new ArgumentException("Concat: no tensors");
        var first = parts[0];
        int a = first.Shape.NormalizeAxis(axis);
        var dims = first.Shape.ToArray();
        int total = 0;
        foreach (var p in parts)
        {
            CheckSame("Concat", first, p);
            if (p.Rank != first.Rank || Enumerable.Range(0, p.Rank).Any(i => i != a && p.Shape[i] != first.Shape[i]))
                throw new TensorShapeException($"Concat: shapes {string.Join(", ", parts.Select(q => q.Shape))} differ off axis {a}");
            total += p.Shape[a];
        }
        dims[a] = total;
        var y = Output(first.Device, first.DType, dims);
        int offset = 0;
        using (Autograd.GradMode.NoGrad())
            foreach (var p in parts)
            {
                using var window = y.Narrow(a, offset, p.Shape[a]);
                first.Backend.Copy(p, window);
                offset += p.Shape[a];
            }
        var sizes = parts.Select(p => p.Shape[a]).ToArray();
        return Record("Concat", y, [.. parts], [], dy =>
        {
            var grads = new Tensor?[sizes.Length];
            int off = 0;
            for (int i = 0; i < sizes.Length; i++)
            {
                grads[i] = dy.Narrow(a, off, sizes[i]).Contiguous();
                off += sizes[i];
            }
            return grads;
        });
    }

    /// <summary>Stacks same-shaped tensors along a new axis.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> parts, int axis)
    {
        if (parts.Count == 0) throw new ArgumentException("Stack: no tensors");
        int a = axis < 0 ? axis + parts[0].Rank + 1 : axis;
        foreach (var p in parts)
            if (!p.Shape.SameDims(parts[0].Shape))
                throw new TensorShapeException($"Stack: shapes {string.Join(", ", parts.Select(q => q.Shape))} differ");
        return Concat(parts.Select(p => p.Unsqueeze(a)).ToList(), a);
    }

    /// <summary>Converts between compute dtypes (F32 ↔ F64) or from storage dtypes (BF16, F16, I32) to a compute dtype.</summary>
    public static Tensor Cast(this Tensor x, DType dtype)
    {
        x.ThrowIfDisposed("Cast");
        if (dtype.IsQuantized() || x.DType.IsQuantized())
            throw new TensorDTypeException($"Cast: use Quantize/Dequantize for {x.DType} → {dtype}");
        var y = Output(x.Device, dtype, x.Shape.ToArray());
        x.Backend.Copy(x, y);
        if (!x.DType.IsCompute() || !dtype.IsCompute()) return y;
        var from = x.DType;
        return Record("Cast", y, [x], [], dy => [dy.Cast(from)]);
    }
}
