namespace SafeRlhf.Tensors;

// SwiGLU gate of the LLaMA feed-forward: y = silu(gate) · up.
public static partial class Ops
{
    public static Tensor SwiGlu(Tensor gate, Tensor up)
    {
        CheckSame("SwiGlu", gate, up);
        if (!gate.Shape.SameDims(up.Shape))
            throw new TensorShapeException($"SwiGlu: gate {gate.Shape} and up {up.Shape} must have the same dims");
        var g = gate.Contiguous();
        var u = up.Contiguous();
        var y = OutputLike(gate);
        gate.Backend.SwiGlu(g, u, y);
        var result = Record("SwiGlu", y, [gate, up], [g, u], dy =>
        {
            var dGate = OutputLike(g);
            var dUp = OutputLike(u);
            gate.Backend.SwiGluBackward(g, u, dy.Contiguous(), dGate, dUp);
            return [dGate, dUp];
        });
        return Finish(result, g, u);
    }
}
