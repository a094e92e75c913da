namespace SafeRlhf.Tensors;

// Rotary position embedding; the backward is the rotation by the negative angle.
public static partial class Ops
{
    /// <summary>x [B, T, H, D] rotated by positions (I32 [B, T]) with base theta; D even.</summary>
    public static Tensor Rope(Tensor x, Tensor positions, double theta, RopeStyle style)
    {
        CheckCompute("Rope", x);
        CheckIndex("Rope", positions, x.Device);
        CheckRank("Rope", x, 4, "x [B, T, H, D]");
        if (positions.Rank != 2 || positions.Dim(0) != x.Dim(0) || positions.Dim(1) != x.Dim(1))
            throw new TensorShapeException($"Rope: positions {positions.Shape} must be [B, T] for x {x.Shape}");
        if (x.Dim(3) % 2 != 0) throw new TensorShapeException($"Rope: head dim {x.Dim(3)} of {x.Shape} must be even");
        var src = x.Contiguous();
        var pos = positions.Contiguous();
        var y = OutputLike(x);
        x.Backend.Rope(src, pos, y, theta, style, inverse: false);
        var result = Record("Rope", y, [x], [pos], dy =>
        {
            var dx = OutputLike(src);
            x.Backend.Rope(dy.Contiguous(), pos, dx, theta, style, inverse: true);
            return [dx];
        });
        return Finish(result, src, pos);
    }
}
