using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Nn;

/// <summary>AdamW (decoupled weight decay, bias correction) over named parameters. Parameters for which
/// the decay filter returns false (by default: biases and 1-D weights such as norms) get no decay.</summary>
public sealed class AdamW : IDisposable
{
    private readonly List<Slot> _slots = [];

    private sealed record Slot(string Name, Tensor Param, Tensor M, Tensor V, bool Decay);

    public AdamW(IEnumerable<(string Name, Tensor Tensor)> parameters, double lr, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8, double weightDecay = 0.0, Func<string, Tensor, bool>? decayFilter = null)
    {
        Lr = lr; Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        var filter = decayFilter ?? DefaultDecay;
        using var _ = TensorScope.Suspend();
        using var tag = MemoryTags.As(MemoryCategory.TrainableState);
        foreach (var (name, p) in parameters)
        {
            if (!p.RequiresGrad) continue;
            _slots.Add(new Slot(name, p, Ops.ZerosLike(p), Ops.ZerosLike(p), filter(name, p)));
        }
    }

    /// <summary>No decay on biases and 1-D tensors (norm weights), as in the reference trainers.</summary>
    public static bool DefaultDecay(string name, Tensor p) => p.Rank >= 2 && !name.EndsWith("bias", StringComparison.Ordinal);

    public double Lr { get; set; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    /// <summary>Steps taken so far.</summary>
    public int Step { get; private set; }

    public IReadOnlyList<string> ParameterNames => _slots.Select(s => s.Name).ToList();

    /// <summary>Applies one update from the accumulated gradients (parameters without a gradient are skipped).</summary>
    public void Update()
    {
        Step++;
        using var _ = GradMode.NoGrad();
        foreach (var s in _slots)
        {
            if (s.Param.Grad is null) continue;
            s.Param.Backend.AdamW(s.Param, s.Param.Grad, s.M, s.V, Lr, Beta1, Beta2, Eps, s.Decay ? WeightDecay : 0.0, Step);
        }
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        double norm = Math.Sqrt(GlobalSumOfSquares());
        if (norm > maxNorm && norm > 0)
        {
            double factor = maxNorm / (norm + 1e-6);
            foreach (var s in _slots)
                if (s.Param.Grad is { } g)
                    g.Backend.Unary(UnaryOp.Scale, g, g, factor, 0);
        }
        return norm;
    }

    /// <summary>Σ‖g‖² over every gradient, tensor by tensor in slot order. A backend that batches the reduction
    /// (<see cref="IBatchedSumOfSquares"/>, a GPU) gets all of its gradients in one call: one wait for the device
    /// instead of one per parameter tensor, with the same terms added in the same order.</summary>
    private double GlobalSumOfSquares()
    {
        var grads = _slots.Select(s => s.Param.Grad).OfType<Tensor>().ToList();
        if (grads.Count > 0 && grads[0].Backend is IBatchedSumOfSquares batched && grads.All(g => ReferenceEquals(g.Backend, grads[0].Backend)))
            return batched.SumOfSquares(grads);
        double total = 0;
        foreach (var g in grads) total += g.Backend.SumOfSquares(g);
        return total;
    }

    /// <summary>Optimizer moments by parameter name (for checkpoints).</summary>
    public IEnumerable<(string Name, Tensor M, Tensor V)> Moments() => _slots.Select(s => (s.Name, s.M, s.V));

    /// <summary>Restores step and moments saved by <see cref="Moments"/>.</summary>
    public void Restore(int step, IReadOnlyDictionary<string, (double[] M, double[] V)> moments)
    {
        Step = step;
        foreach (var s in _slots)
        {
            if (!moments.TryGetValue(s.Name, out var mv))
                throw new KeyNotFoundException($"optimizer state has no moments for parameter '{s.Name}'");
            Write(s.M, mv.M, s.Name);
            Write(s.V, mv.V, s.Name);
        }
    }

    private static void Write(Tensor dst, double[] values, string name)
    {
        if (values.Length != dst.Numel)
            throw new InvalidDataException($"optimizer moment for '{name}' has {values.Length} values, parameter has {dst.Numel}");
        using var src = Tensor.FromArray(dst.Device, values, dst.Shape.ToArray());
        dst.Backend.Copy(src, dst);
    }


    public void Dispose()
    {
        foreach (var s in _slots) { s.M.Dispose(); s.V.Dispose(); }
        _slots.Clear();
    }
}

/// <summary>Learning-rate schedules: linear warmup then constant or cosine decay to zero.</summary>
public static class LrSchedule
{
    public static double Constant(double baseLr, int step, int warmupSteps) =>
        warmupSteps > 0 && step < warmupSteps ? baseLr * (step + 1) / warmupSteps : baseLr;

    public static double Cosine(double baseLr, int step, int totalSteps, int warmupSteps)
    {
        if (warmupSteps > 0 && step < warmupSteps) return baseLr * (step + 1) / warmupSteps;
        double progress = (step - warmupSteps) / (double)Math.Max(1, totalSteps - warmupSteps);
        return baseLr * 0.5 * (1 + Math.Cos(Math.PI * Math.Clamp(progress, 0, 1)));
    }
}
