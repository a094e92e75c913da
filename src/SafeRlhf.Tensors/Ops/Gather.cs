namespace SafeRlhf.Tensors;

// Gather along an axis (log-probs of chosen tokens) and embedding lookup; backward scatters-adds.
public static partial class Ops
{
    /// <summary>y[.., j, ..] = x[.., index[.., j, ..], ..] along <paramref name="axis"/>. index is I32 with
    /// x's rank and x's dims on every other axis.</summary>
    public static Tensor Gather(this Tensor x, int axis, Tensor index)
    {
        CheckCompute("Gather", x);
        CheckIndex("Gather", index, x.Device);
        int a = x.Shape.NormalizeAxis(axis);
        if (index.Rank != x.Rank)
            throw new TensorShapeException($"Gather: index {index.Shape} must have the rank of x {x.Shape}");
        for (int i = 0; i < x.Rank; i++)
            if (i != a && index.Shape[i] != x.Shape[i])
                throw new TensorShapeException($"Gather: index {index.Shape} and x {x.Shape} differ on axis {i}");
        var src = x.Contiguous();
        var idx = index.Contiguous();
        var y = Output(x.Device, x.DType, index.Shape.ToArray());
        x.Backend.Gather(src, idx, y, a);
        var result = Record("Gather", y, [x], [idx], dy =>
        {
            var dx = ZerosLike(src);
            x.Backend.ScatterAdd(dy.Contiguous(), idx, dx, a);
            return [dx];
        });
        return Finish(result, src, idx);
    }

    /// <summary>Rows of <paramref name="weight"/> [vocab, dim] for ids (I32, any dims) → [.., dim].</summary>
    public static Tensor Embedding(Tensor weight, Tensor ids)
    {
        CheckCompute("Embedding", weight);
        CheckIndex("Embedding", ids, weight.Device);
        CheckRank("Embedding", weight, 2, "weight");
        int n = (int)ids.Numel, dim = weight.Dim(1);
        var flat = ids.Contiguous().Reshape(n, 1);
        var index = BroadcastView("Embedding", flat, [n, dim]).Contiguous();
        var w = weight.Contiguous();
        var y = Output(weight.Device, weight.DType, n, dim);
        weight.Backend.Gather(w, index, y, 0);
        var rows = Record("Embedding", y, [weight], [index], dy =>
        {
            var dw = ZerosLike(w);
            weight.Backend.ScatterAdd(dy.Contiguous(), index, dw, 0);
            return [dw];
        });
        var result = rows.Reshape([.. ids.Shape.ToArray(), dim]);
        return Finish(result, flat, index, w, rows);
    }
}
