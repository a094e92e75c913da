namespace SafeRlhf.Tensors;

// RMSNorm fused with its weight: y = x / sqrt(mean(x²) + eps) · w over the last axis.
public static partial class Ops
{
    /// <summary>x [.., D], weight [D] → y [.., D].</summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, double eps)
    {
        CheckSame("RmsNorm", x, weight);
        if (weight.Rank != 1 || x.Rank < 1 || x.Dim(-1) != weight.Dim(0))
            throw new TensorShapeException($"RmsNorm: x {x.Shape} and weight {weight.Shape} (weight must be [D] with D the last dim of x)");
        var src = x.Contiguous();
        var w = weight.Contiguous();
        var y = OutputLike(x);
        var rstd = Output(x.Device, x.DType, x.Shape.ToArray()[..^1]);
        x.Backend.RmsNorm(src, w, y, rstd, eps);
        var result = Record("RmsNorm", y, [x, weight], [src, w, rstd], dy =>
        {
            var dx = OutputLike(src);
            var dw = ZerosLike(w);
            x.Backend.RmsNormBackward(src, w, rstd, dy.Contiguous(), dx, dw);
            return [dx, dw];
        });
        return Finish(result, src, w, rstd);
    }
}
