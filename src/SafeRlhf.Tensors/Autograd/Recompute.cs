namespace SafeRlhf.Tensors.Autograd;

/// <summary>Activation recomputation ("gradient checkpointing"): runs a block without keeping its activations —
/// the tape saves only the block's input — and recomputes them during the backward pass. The recomputation's
/// activations die as soon as its own backward has run. Parameter gradients accumulate during that backward.</summary>
public static class Recompute
{
    /// <summary>y = f(x); <paramref name="parameters"/> are the trainable tensors f reads besides x.</summary>
    public static Tensor Run(Func<Tensor, Tensor> f, Tensor x, IEnumerable<Tensor> parameters)
    {
        var inputs = new List<Tensor> { x };
        inputs.AddRange(parameters.Where(p => p.RequiresGrad));
        Tensor y;
        using (GradMode.NoGrad())
        using (var forward = new TensorScope())
            y = forward.Keep(f(x));
        return Tape.Record("Recompute", y, [.. inputs], [x], dy =>
        {
            var grads = new Tensor?[inputs.Count];
            using var recompute = new TensorScope();
            var input = x.Detach();
            input.RequiresGrad = x.RequiresGrad;
            using (GradMode.Enable())
            {
                var recomputed = f(input);
                if (!recomputed.RequiresGrad) return grads;
                Tape.Backward(recomputed, dy);
            }
            if (input.Grad is not null) grads[0] = recompute.Keep(input.Grad.Detach());
            return grads;
        });
    }
}
