namespace SafeRlhf.Tensors;

// Sum and mean over axes; the backward broadcasts the gradient back over the reduced axes.
public static partial class Ops
{
    /// <summary>Sum over <paramref name="axes"/> (all axes when empty).</summary>
    public static Tensor Sum(this Tensor x, int[]? axes = null, bool keepDim = false)
    {
        CheckCompute("Sum", x);
        var reduce = ReducedAxes(x, axes);
        var keepDims = x.Shape.ToArray();
        foreach (int a in reduce) keepDims[a] = 1;
        var src = x.Contiguous();
        var y = Output(x.Device, x.DType, keepDims);
        x.Backend.ReduceSum(src, y);
        var inDims = x.Shape.ToArray();
        var result = Record("Sum", y, [x], [], dy => [BroadcastView("Sum", dy, inDims).Contiguous()]);
        if (keepDim) return Finish(result, src);
        return Finish(result.Reshape(keepDims.Where((_, i) => !reduce.Contains(i)).ToArray()), src, result);
    }

    /// <summary>Sum over one axis.</summary>
    public static Tensor Sum(this Tensor x, int axis, bool keepDim = false) => x.Sum([axis], keepDim);

    /// <summary>Mean over <paramref name="axes"/> (all axes when empty).</summary>
    public static Tensor Mean(this Tensor x, int[]? axes = null, bool keepDim = false)
    {
        var reduce = ReducedAxes(x, axes);
        long count = 1;
        foreach (int a in reduce) count *= x.Shape[a];
        return x.Sum(reduce, keepDim).Scale(1.0 / Math.Max(count, 1));
    }

    public static Tensor Mean(this Tensor x, int axis, bool keepDim = false) => x.Mean([axis], keepDim);

    private static int[] ReducedAxes(Tensor x, int[]? axes)
    {
        if (axes is null || axes.Length == 0) return Enumerable.Range(0, x.Rank).ToArray();
        var set = axes.Select(x.Shape.NormalizeAxis).Distinct().Order().ToArray();
        if (set.Length != axes.Length) throw new TensorShapeException($"Sum: repeated axis in [{string.Join(", ", axes)}] for {x.Shape}");
        return set;
    }
}
