using System.Diagnostics;

namespace SafeRlhf.Tensors.Profiling;

/// <summary>Totals of one op over a profiled region: calls, wall time and the napkin-math work estimated
/// from the shapes of each call (see <see cref="ProfilingBackend"/> for the formulas).</summary>
public sealed record OpProfile(string Op, long Calls, double Seconds, double Flops, double Bytes)
{
    /// <summary>Achieved GFLOP/s (0 when no time was measured).</summary>
    public double Gflops => Seconds > 0 ? Flops / Seconds / 1e9 : 0;
    /// <summary>Achieved GB/s of estimated memory traffic (0 when no time was measured).</summary>
    public double Gbps => Seconds > 0 ? Bytes / Seconds / 1e9 : 0;
}

/// <summary>An <see cref="IBackend"/> decorator that forwards every call unchanged to an inner backend and
/// records, per op, the call count, wall time and estimated FLOPs and bytes moved. Wrap it in a
/// <see cref="Device"/> to profile model code without touching it.
/// <para>Timing: when the inner backend launches work asynchronously (a GPU), pass its synchronisation as
/// <c>synchronize</c>; it runs before and after each timed call so an op is charged only for its own work.
/// Calls an inner backend makes back into this one (a GPU backend allocating a staging tensor on the same
/// device) are charged to the outer op, so the per-op times add up to the profiled wall time.</para>
/// <para>Napkin math, with n the element count of the output (or of the main input for reductions) and
/// bytes = every operand read once plus every output written once (broadcast operands counted once):
/// MatMul 2·batch·M·N·K; QuantizedMatMul(Backward) 2·N·M·K; Attention 4·B·H·D·P and its backward 10·B·H·D·P
/// (2.5×: QKᵀ and dO·Vᵀ recomputed, dQ, dK, dV), with P the causally visible (query, key) pairs per head;
/// CrossEntropy(Backward) 4·N·V; RmsNorm 4·n, backward 10·n; Rope 6·n; SwiGlu 6·n, backward 12·n;
/// Softmax 4·n, backward 3·n; AdamW 15 per parameter; elementwise 1 per element (4 for Silu, Sigmoid and
/// LogSigmoid), backward 2; ReduceSum n; copies, fills, gathers and host transfers 0 FLOPs.</para></summary>
public sealed partial class ProfilingBackend : IBackend, IDeviceActivitySource, IBatchedSumOfSquares, IUninitializedAllocator, IDeviceSampler,
    IRowInterleaving
{
    private static readonly string[] UnaryNames = Enum.GetNames<UnaryOp>().Select(n => "Unary." + n).ToArray();
    private static readonly string[] UnaryBackwardNames = Enum.GetNames<UnaryOp>().Select(n => "UnaryBackward." + n).ToArray();
    private static readonly string[] BinaryNames = Enum.GetNames<BinaryOp>().Select(n => "Binary." + n).ToArray();

    [ThreadStatic] private static int t_depth;

    private readonly Action? _synchronize;
    private readonly Dictionary<string, Accumulator> _ops = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    private sealed class Accumulator
    {
        public long Calls;
        public long Ticks;
        public double Flops;
        public double Bytes;
    }

    /// <param name="inner">The backend that does the work.</param>
    /// <param name="synchronize">Waits for the inner backend's queued work (null for synchronous backends).</param>
    public ProfilingBackend(IBackend inner, Action? synchronize = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Inner = inner;
        _synchronize = synchronize;
    }

    /// <summary>The backend every call is forwarded to.</summary>
    public IBackend Inner { get; }

    /// <summary>The inner backend's name: profiling does not change what runs.</summary>
    public string Name => Inner.Name;

    /// <summary>When false, calls are forwarded without being recorded (e.g. during a warm-up).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Per-op totals recorded so far, most time first.</summary>
    public IReadOnlyList<OpProfile> Snapshot()
    {
        lock (_lock)
        {
            return _ops.Select(kv => new OpProfile(kv.Key, kv.Value.Calls, kv.Value.Ticks / (double)Stopwatch.Frequency, kv.Value.Flops, kv.Value.Bytes))
                .OrderByDescending(p => p.Seconds).ThenBy(p => p.Op, StringComparer.Ordinal).ToList();
        }
    }

    /// <summary>The totals of one op, or null when it was never called.</summary>
    public OpProfile? Get(string op) => Snapshot().FirstOrDefault(p => p.Op == op);

    /// <summary>The sum over all ops (named "total").</summary>
    public OpProfile Total()
    {
        var all = Snapshot();
        return new OpProfile("total", all.Sum(p => p.Calls), all.Sum(p => p.Seconds), all.Sum(p => p.Flops), all.Sum(p => p.Bytes));
    }

    /// <summary>Forgets everything recorded so far.</summary>
    public void Reset()
    {
        lock (_lock) _ops.Clear();
    }

    // ---------------- timing ----------------

    private long Begin()
    {
        if (t_depth++ != 0 || !Enabled) return 0;
        try
        {
            _synchronize?.Invoke();
        }
        catch
        {
            t_depth--;
            throw;
        }
        return Stopwatch.GetTimestamp();
    }

    private void End(long start, string op, double flops, double bytes)
    {
        if (--t_depth != 0 || !Enabled || start == 0) return;
        _synchronize?.Invoke();
        long ticks = Stopwatch.GetTimestamp() - start;
        lock (_lock)
        {
            if (!_ops.TryGetValue(op, out var a)) _ops[op] = a = new Accumulator();
            a.Calls++;
            a.Ticks += ticks;
            a.Flops += flops;
            a.Bytes += bytes;
        }
    }

    /// <summary>Times one forwarded call: disposing it (after the call, also when it throws) charges the op with its
    /// time and the given work.</summary>
    private readonly struct Timing(ProfilingBackend owner, long start, string op, double flops, double bytes) : IDisposable
    {
        public void Dispose() => owner.End(start, op, flops, bytes);
    }

    /// <summary>Starts timing a call of <paramref name="op"/> (its work estimated from the shapes beforehand).</summary>
    private Timing Time(string op, double flops, double bytes) => new(this, Begin(), op, flops, bytes);

    // ---------------- napkin math ----------------

    /// <summary>Distinct elements a view addresses (axes with stride 0 are broadcasts and count once).</summary>
    private static long Distinct(Tensor t)
    {
        long n = 1;
        var dims = t.Shape.Dims;
        var strides = t.Shape.Strides;
        for (int i = 0; i < dims.Length; i++)
            if (strides[i] != 0 || dims[i] == 0) n *= dims[i];
        return n;
    }

    /// <summary>Bytes of the distinct elements of a view.</summary>
    private static double B(Tensor? t)
    {
        if (t is null) return 0;
        return t.DType.IsQuantized() ? t.DType.ByteCount(t.Numel) : t.DType.ByteCount(Distinct(t));
    }

    private static double UnaryCost(UnaryOp op) => op switch
    {
        UnaryOp.Silu or UnaryOp.Sigmoid or UnaryOp.LogSigmoid => 4,
        UnaryOp.Clamp => 2,
        _ => 1,
    };

    /// <summary>(query, key) pairs a causal query block of length T over S keys sees: query t sits at key
    /// position S − T + t and sees the keys at or before it.</summary>
    public static double CausalPairs(long t, long s)
    {
        double pairs = 0;
        for (long i = 0; i < t; i++) pairs += Math.Clamp(s - t + i + 1, 0, s);
        return pairs;
    }

    /// <summary>Estimated FLOPs of <see cref="IBackend.MatMul"/> for these operands.</summary>
    public static double MatMulFlops(Tensor a, Tensor c, bool transA, bool accumulate)
    {
        long m = c.Dim(-2), n = c.Dim(-1);
        long batch = m * n == 0 ? 0 : c.Numel / (m * n);
        long k = transA ? a.Dim(-2) : a.Dim(-1);
        return 2.0 * batch * m * n * k + (accumulate ? (double)batch * m * n : 0);
    }

    /// <summary>Estimated FLOPs of <see cref="IBackend.Attention"/> (q [B, T, H, D], k [B, S, Hkv, D]).</summary>
    public static double AttentionFlops(Tensor q, Tensor k) =>
        4.0 * q.Dim(0) * q.Dim(2) * q.Dim(3) * CausalPairs(q.Dim(1), k.Dim(1));
}
