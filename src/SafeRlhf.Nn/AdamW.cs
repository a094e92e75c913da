using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Nn;

/// <summary>AdamW (decoupled weight decay, bias correction) over named parameters. Parameters for which
/// the decay filter returns false (by default: biases and 1-D weights such as norms) get no decay.
/// In a data-parallel job (<see cref="DataParallel"/>) call <see cref="ReduceGradients"/> after backward and
/// before <see cref="ClipGradNorm"/>; every method is then a collective that all ranks call in the same order.</summary>
public sealed partial class AdamW : IDisposable
{
    private readonly List<Slot> _slots = [];
    private readonly DataParallel _dp;

    /// <summary>A trained parameter and the moments of the elements [Start, Start + Length) of its flattened
    /// values that this rank updates: all of them unless the optimizer state is sharded. M and V have the
    /// parameter's shape when it is updated whole, else shape [Length]; they are null for Length 0.</summary>
    private sealed record Slot(string Name, Tensor Param, Tensor? M, Tensor? V, bool Decay, long Start, long Length)
    {
        public bool Whole => Start == 0 && Length == Param.Numel;
    }

    public AdamW(IEnumerable<(string Name, Tensor Tensor)> parameters, double lr, double beta1 = 0.9, double beta2 = 0.95,
        double eps = 1e-8, double weightDecay = 0.0, Func<string, Tensor, bool>? decayFilter = null, DataParallel? dataParallel = null)
    {
        Lr = lr; Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        _dp = dataParallel ?? DataParallel.Local;
        var filter = decayFilter ?? DefaultDecay;
        using var _ = TensorScope.Suspend();
        using var tag = MemoryTags.As(MemoryCategory.TrainableState);
        var trained = parameters.Where(p => p.Tensor.RequiresGrad).ToList();
        long total = trained.Sum(p => p.Tensor.Numel), at = 0;
        var (lo, length) = Sharded ? DataParallel.ShardOf(total, _dp.Comm.Rank, _dp.Comm.WorldSize) : (0, total);
        foreach (var (name, p) in trained)
        {
            long start = Math.Clamp(lo - at, 0, p.Numel), end = Math.Clamp(lo + length - at, 0, p.Numel);
            at += p.Numel;
            long n = end - start;
            bool whole = start == 0 && n == p.Numel;
            Tensor? M() => n == 0 ? null : whole ? Ops.ZerosLike(p) : Tensor.Zeros(p.Device, p.DType, checked((int)n));
            _slots.Add(new Slot(name, p, M(), M(), filter(name, p), start, n));
        }
        TotalElements = total;
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

    /// <summary>Elements of all trained parameters together.</summary>
    public long TotalElements { get; }

    /// <summary>True when this rank keeps the moments of its shard of the parameters only (ZeRO stage 1).</summary>
    public bool Sharded => _dp.ShardOptimizerState && _dp.Comm.WorldSize > 1;

    /// <summary>Bytes of AdamW moments this rank holds.</summary>
    public long MomentBytes => _slots.Sum(s => s.M is null ? 0 : 2 * s.M.DType.ByteCount(s.Length));

    /// <summary>Applies one update from the accumulated gradients (parameters without a gradient are skipped).
    /// Sharded, each rank updates its shard and the updated weights are all-gathered.</summary>
    public void Update()
    {
        Step++;
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        foreach (var s in _slots)
        {
            if (s.Param.Grad is null || s.M is null || s.V is null) continue;
            var (p, g) = s.Whole ? (s.Param, s.Param.Grad) : (Segment(s.Param, s), Segment(s.Param.Grad, s));
            s.Param.Backend.AdamW(p, g, s.M, s.V, Lr, Beta1, Beta2, Eps, s.Decay ? WeightDecay : 0.0, Step);
        }
        if (Sharded) GatherParameters();
    }

    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping. Sharded, the norm is summed over every rank's shard.</summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        double total;
        if (Sharded)
        {
            total = 0;
            foreach (var s in _slots)
                if (s.Param.Grad is { } g && s.Length > 0) total += g.Backend.SumOfSquares(s.Whole ? g : Segment(g, s));
            Span<double> sum = [total];
            _dp.Comm.AllReduceSum(sum);
            total = sum[0];
        }
        else total = GlobalSumOfSquares();
        double norm = Math.Sqrt(total);
        if (norm > maxNorm && norm > 0)
        {
            double factor = maxNorm / (norm + 1e-6);
            foreach (var s in _slots)
                if (s.Param.Grad is { } g && s.Length > 0)
                {
                    var seg = s.Whole ? g : Segment(g, s);
                    seg.Backend.Unary(UnaryOp.Scale, seg, seg, factor, 0);
                }
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

    /// <summary>Optimizer moments by parameter name, shaped as the parameter (for checkpoints). Sharded, this is
    /// a collective: the shards are all-gathered, so every rank returns the whole moments.</summary>
    public IEnumerable<(string Name, Tensor M, Tensor V)> Moments() =>
        Sharded ? GatherMoments() : _slots.Select(s => (s.Name, s.M!, s.V!));

    /// <summary>Restores step and moments saved by <see cref="Moments"/> (whole, parameter-shaped moments; a
    /// sharded optimizer keeps its own shard of them).</summary>
    public void Restore(int step, IReadOnlyDictionary<string, (double[] M, double[] V)> moments)
    {
        Step = step;
        foreach (var s in _slots)
        {
            if (!moments.TryGetValue(s.Name, out var mv))
                throw new KeyNotFoundException($"optimizer state has no moments for parameter '{s.Name}'");
            if (mv.M.Length != s.Param.Numel || mv.V.Length != s.Param.Numel)
                throw new InvalidDataException($"optimizer moment for '{s.Name}' has {mv.M.Length} values, parameter has {s.Param.Numel}");
            if (s.M is null || s.V is null) continue;
            Write(s.M, mv.M.AsSpan(checked((int)s.Start), checked((int)s.Length)));
            Write(s.V, mv.V.AsSpan(checked((int)s.Start), checked((int)s.Length)));
        }
    }

    private static void Write(Tensor dst, ReadOnlySpan<double> values)
    {
        using var src = Tensor.FromArray(dst.Device, values, dst.Shape.ToArray());
        dst.Backend.Copy(src, dst);
    }

    /// <summary>The elements [s.Start, s.Start + s.Length) of <paramref name="t"/> flattened, as a view (owned by
    /// the caller's scope).</summary>
    private static Tensor Segment(Tensor t, Slot s) =>
        t.Reshape(checked((int)t.Numel)).Narrow(0, checked((int)s.Start), checked((int)s.Length));

    public void Dispose()
    {
        foreach (var s in _slots) { s.M?.Dispose(); s.V?.Dispose(); }
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
