namespace SafeRlhf.Tensors.Autograd;

/// <summary>One recorded op on the tape: its inputs, the tensors its backward rule reads (saved, held
/// alive until the rule has run) and the rule that maps the output gradient to input gradients (null for inputs
/// that need none). <see cref="Sequence"/> is the recording order. Inputs are kept for the graph's shape only: a
/// rule reads no input's data unless it is also saved.</summary>
internal sealed class GradNode
{
    private Tensor[]? _saved;

    public GradNode(string op, Tensor[] inputs, Tensor[] saved, Func<Tensor, Tensor?[]> backward, long sequence)
    {
        Op = op;
        Inputs = inputs;
        BackwardRule = backward;
        Sequence = sequence;
        foreach (var t in saved) t.RetainForTape();
        _saved = saved;
    }

    public string Op { get; }
    public Tensor[] Inputs { get; }
    public Func<Tensor, Tensor?[]> BackwardRule { get; }
    public long Sequence { get; }

    /// <summary>Lets go of the saved tensors (after the rule has run, or when the graph is dropped); idempotent.</summary>
    public void ReleaseSaved()
    {
        var saved = _saved;
        if (saved is null) return;
        _saved = null;
        foreach (var t in saved) t.ReleaseFromTape();
    }
}
