namespace SafeRlhf.Tensors;

/// <summary>Collects every tensor created on this thread while it is the innermost scope and disposes them
/// all when it ends, except those passed to <see cref="Keep"/> (which move to the enclosing scope, or to
/// no scope: then the caller owns them). Tensors made outside any scope are owned by their creator.
/// The outermost scope also owns the autograd graph recorded inside it: when it ends, every backward rule that
/// has not run lets go of the tensors it saved (a forward whose backward never came frees its activations).
/// Disposing a tensor that a recorded rule still needs only drops the scope's hold (see <see cref="Tensor"/>),
/// so inner scopes (one per layer) free a forward's temporaries as soon as the layer finishes.</summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? t_current;
    private readonly TensorScope? _parent;
    private readonly TensorScope _root;
    private readonly List<Tensor> _tensors = [];
    private readonly List<Autograd.GradNode> _nodes = [];
    private bool _disposed;

    public TensorScope()
    {
        _parent = t_current;
        _root = _parent?._root ?? this;
        t_current = this;
    }

    internal static void Register(Tensor t) => t_current?._tensors.Add(t);

    internal static void RegisterNode(Autograd.GradNode node) => t_current?._root._nodes.Add(node);

    /// <summary>Until disposed, tensors created on this thread belong to no scope (the caller owns them).</summary>
    public static IDisposable Suspend() => new Suspension();

    private sealed class Suspension : IDisposable
    {
        private readonly TensorScope? _saved = t_current;
        private bool _done;
        public Suspension() => t_current = null;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            t_current = _saved;
        }
    }

    /// <summary>Hands a tensor out of this scope to the enclosing one (or to the caller, at top level). A tensor
    /// this scope does not own is left to its owner.</summary>
    public Tensor Keep(Tensor tensor)
    {
        int i = _tensors.LastIndexOf(tensor);
        if (i < 0) return tensor;
        _tensors.RemoveAt(i);
        _parent?._tensors.Add(tensor);
        return tensor;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (t_current != this)
            throw new InvalidOperationException("TensorScope disposed out of order (inner scopes must end first)");
        t_current = _parent;
        foreach (var t in _tensors) t.Dispose();
        _tensors.Clear();
        foreach (var node in _nodes) node.ReleaseSaved();
        _nodes.Clear();
    }
}
