namespace SafeRlhf.Tensors.Autograd;

/// <summary>The reverse-mode tape. Every differentiable op appends a <see cref="GradNode"/> with a
/// sequence number; <c>Backward</c> replays the nodes reachable from the loss in reverse
/// recording order (a valid reverse topological order), accumulating gradients into leaf tensors.</summary>
public static class Tape
{
    private static long s_sequence;

    /// <summary>Records <paramref name="op"/> producing <paramref name="output"/> if any input requires grad.
    /// <paramref name="saved"/> lists every tensor whose data <paramref name="backward"/> reads: the tape holds them
    /// until the rule has run (or the graph is dropped), whatever their owners do meanwhile.</summary>
    internal static Tensor Record(string op, Tensor output, Tensor[] inputs, Tensor[] saved, Func<Tensor, Tensor?[]> backward)
    {
        if (!GradMode.IsEnabled) return output;
        bool any = false;
        foreach (var t in inputs) any |= t.RequiresGrad;
        if (!any) return output;
        output.RequiresGrad = true;
        var node = new GradNode(op, inputs, saved, backward, Interlocked.Increment(ref s_sequence));
        output.Node = node;
        TensorScope.RegisterNode(node);
        return output;
    }

    /// <summary>Back-propagates from a one-element <paramref name="loss"/>; gradients accumulate into the
    /// Grad of every leaf that requires grad. The recorded graph is released afterwards.</summary>
    public static void Backward(Tensor loss)
    {
        loss.ThrowIfDisposed("Backward");
        if (loss.Numel != 1)
            throw new TensorShapeException($"Backward: needs a scalar (one-element) loss, got shape {loss.Shape}");
        using (GradMode.NoGrad()) Backward(loss, Ops.OnesLike(loss));
    }

    /// <summary>Back-propagates a given output gradient <paramref name="seed"/> (same dims as
    /// <paramref name="loss"/>) from a tensor of any shape.</summary>
    public static void Backward(Tensor loss, Tensor seed)
    {
        loss.ThrowIfDisposed("Backward");
        if (!seed.Shape.SameDims(loss.Shape))
            throw new TensorShapeException($"Backward: seed gradient {seed.Shape} does not match output {loss.Shape}");
        if (!loss.RequiresGrad)
            throw new InvalidOperationException("Backward: the loss does not require grad (no parameter with RequiresGrad contributed to it, or it was computed under NoGrad)");

        var nodes = ReachableNodes(loss);
        var flight = new InFlight(seed);
        try
        {
            using (GradMode.NoGrad())
            {
                if (loss.Node is null) { AccumulateLeaf(loss, seed); return; }
                flight.Grads[loss] = seed;
                foreach (var t in nodes)
                {
                    if (!flight.Grads.Remove(t, out var dOut)) continue;
                    var node = t.Node!;
                    var dInputs = RunRule(node, dOut);
                    for (int i = 0; i < node.Inputs.Length; i++)
                    {
                        var input = node.Inputs[i];
                        var g = dInputs[i];
                        if (g is null || !input.RequiresGrad) continue;
                        if (!g.Shape.SameDims(input.Shape) || g.DType != input.DType)
                            throw new InvalidOperationException(
                                $"Backward of {node.Op}: gradient {g.Shape} {g.DType} for input {i} of shape {input.Shape} {input.DType}");
                        flight.Route(input, g);
                    }
                    flight.Done(dOut);
                }
            }
        }
        finally
        {
            foreach (var t in nodes)
            {
                t.Node?.ReleaseSaved();
                t.Node = null;
            }
        }
    }

    /// <summary>The tensors with a node reachable from the loss through inputs that require grad, latest first.</summary>
    private static List<Tensor> ReachableNodes(Tensor loss)
    {
        var nodes = new List<Tensor>();
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<Tensor>();
        stack.Push(loss);
        while (stack.Count > 0)
        {
            var t = stack.Pop();
            if (t.Node is null || !seen.Add(t)) continue;
            nodes.Add(t);
            foreach (var input in t.Node.Inputs)
                if (input.RequiresGrad) stack.Push(input);
        }
        nodes.Sort((x, y) => y.Node!.Sequence.CompareTo(x.Node!.Sequence));
        return nodes;
    }

    /// <summary>Gradients in flight: each dies as soon as the rule that consumes it has run (or, for a leaf, once it has
    /// been added to the leaf's Grad). One tensor may flow to several inputs (Add passes dy to both): uses counts.
    /// The seed belongs to the caller and is never disposed.</summary>
    private sealed class InFlight(Tensor seed)
    {
        private readonly Dictionary<Tensor, int> _uses = new(ReferenceEqualityComparer.Instance);

        /// <summary>The gradient waiting for each tensor whose rule has not run yet.</summary>
        public Dictionary<Tensor, Tensor> Grads { get; } = new(ReferenceEqualityComparer.Instance);

        private void Use(Tensor g) => _uses[g] = _uses.GetValueOrDefault(g) + 1;

        /// <summary>One use of g is over; the last disposes it.</summary>
        public void Done(Tensor g)
        {
            if (ReferenceEquals(g, seed)) return;
            int left = _uses[g] - 1;
            if (left > 0) { _uses[g] = left; return; }
            _uses.Remove(g);
            g.Dispose();
        }

        /// <summary>Sends g to input: added to a leaf's Grad, summed with the gradient already waiting there, or kept.</summary>
        public void Route(Tensor input, Tensor g)
        {
            Use(g);
            if (input.Node is null)
            {
                AccumulateLeaf(input, g);
                Done(g);
            }
            else if (Grads.TryGetValue(input, out var prev))
            {
                var sum = Ops.Add(prev, g);
                Use(sum);
                Grads[input] = sum;
                Done(prev);
                Done(g);
            }
            else Grads[input] = g;
        }
    }

    /// <summary>Runs a rule in a scope of its own (its temporaries die with it; the gradients it returns move to
    /// the caller's scope), then lets go of the tensors it saved.</summary>
    private static Tensor?[] RunRule(GradNode node, Tensor dOut)
    {
        Tensor?[] dInputs;
        using (var scope = new TensorScope())
        {
            dInputs = node.BackwardRule(dOut);
            foreach (var g in dInputs)
                if (g is not null) scope.Keep(g);
        }
        node.ReleaseSaved();
        return dInputs;
    }

    private static void AccumulateLeaf(Tensor leaf, Tensor g)
    {
        if (leaf.Grad is null)
        {
            using var outside = TensorScope.Suspend();
            using var tag = MemoryTags.As(MemoryCategory.TrainableState);
            var grad = Tensor.Zeros(leaf.Device, leaf.DType, leaf.Shape.ToArray());
            leaf.Backend.Copy(g, grad);
            leaf.Grad = grad;
        }
        else
        {
            using var contiguous = g.Contiguous();
            leaf.Backend.Binary(BinaryOp.Add, leaf.Grad, contiguous, leaf.Grad);
        }
    }
}
