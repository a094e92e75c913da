namespace SafeRlhf.Tensors;

// Softmax and log-softmax over the last axis.
public static partial class Ops
{
    public static Tensor Softmax(this Tensor x) => SoftmaxCore("Softmax", x, log: false);
    public static Tensor LogSoftmax(this Tensor x) => SoftmaxCore("LogSoftmax", x, log: true);

    private static Tensor SoftmaxCore(string name, Tensor x, bool log)
    {
        CheckCompute(name, x);
        if (x.Rank == 0) throw new TensorShapeException($"{name}: needs rank ≥ 1, got {x.Shape}");
        var src = x.Contiguous();
        var y = OutputLike(x);
        x.Backend.Softmax(src, y, log);
        var result = Record(name, y, [x], [y], dy =>
        {
            var dx = OutputLike(y);
            x.Backend.SoftmaxBackward(y, dy.Contiguous(), dx, log);
            return [dx];
        });
        return Finish(result, src);
    }
}
