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
public sealed partial class ProfilingBackend : IBackend, IDeviceActivitySource, IBatchedSumOfSquares, IUninitializedAllocator, IDeviceSampler
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

    // ---------------- memory ----------------

    public Storage Allocate(DType dtype, long count)
    {
        long t0 = Begin();
        try { return Inner.Allocate(dtype, count); }
        finally { End(t0, "Allocate", 0, dtype.IsQuantized() && count % dtype.BlockElements() != 0 ? 0 : dtype.ByteCount(count)); }
    }

    public MemoryStats Memory => Inner.Memory;

    public void ResetPeakMemory() => Inner.ResetPeakMemory();

    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src)
    {
        long t0 = Begin();
        try { Inner.Write(dst, byteOffset, src); }
        finally { End(t0, "Write", 0, src.Length); }
    }

    public void Read(Storage src, long byteOffset, Span<byte> dst)
    {
        long t0 = Begin();
        try { Inner.Read(src, byteOffset, dst); }
        finally { End(t0, "Read", 0, dst.Length); }
    }

    public void Copy(Tensor src, Tensor dst)
    {
        long t0 = Begin();
        try { Inner.Copy(src, dst); }
        finally { End(t0, "Copy", 0, B(src) + B(dst)); }
    }

    public void Fill(Tensor dst, double value)
    {
        long t0 = Begin();
        try { Inner.Fill(dst, value); }
        finally { End(t0, "Fill", 0, B(dst)); }
    }

    // ---------------- elementwise ----------------

    public void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b)
    {
        long t0 = Begin();
        try { Inner.Unary(op, x, y, a, b); }
        finally { End(t0, UnaryNames[(int)op], UnaryCost(op) * y.Numel, B(x) + B(y)); }
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b)
    {
        long t0 = Begin();
        try { Inner.UnaryBackward(op, x, y, dy, dx, a, b); }
        finally { End(t0, UnaryBackwardNames[(int)op], 2.0 * UnaryCost(op) * dx.Numel, B(x) + B(y) + B(dy) + B(dx)); }
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c)
    {
        long t0 = Begin();
        try { Inner.Binary(op, a, b, c); }
        finally { End(t0, BinaryNames[(int)op], c.Numel, B(a) + B(b) + B(c)); }
    }

    public void Where(Tensor cond, Tensor a, Tensor b, Tensor y)
    {
        long t0 = Begin();
        try { Inner.Where(cond, a, b, y); }
        finally { End(t0, "Where", y.Numel, B(cond) + B(a) + B(b) + B(y)); }
    }

    public void ReduceSum(Tensor x, Tensor y)
    {
        long t0 = Begin();
        try { Inner.ReduceSum(x, y); }
        finally { End(t0, "ReduceSum", x.Numel, B(x) + B(y)); }
    }

    // ---------------- linear algebra ----------------

    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate)
    {
        long t0 = Begin();
        try { Inner.MatMul(a, b, c, transA, transB, accumulate); }
        finally { End(t0, "MatMul", MatMulFlops(a, c, transA, accumulate), B(a) + B(b) + B(c) * (accumulate ? 2 : 1)); }
    }

    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y)
    {
        long t0 = Begin();
        try { Inner.QuantizedMatMul(x, w, y); }
        finally { End(t0, "QuantizedMatMul", 2.0 * y.Numel * w.Dim(-1), B(x) + B(w) + B(y)); }
    }

    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx)
    {
        long t0 = Begin();
        try { Inner.QuantizedMatMulBackward(dy, w, dx); }
        finally { End(t0, "QuantizedMatMulBackward", 2.0 * dx.Numel * w.Dim(0), B(dy) + B(w) + B(dx)); }
    }

    public void Quantize(Tensor x, Tensor q)
    {
        long t0 = Begin();
        try { Inner.Quantize(x, q); }
        finally { End(t0, "Quantize", 3.0 * x.Numel, B(x) + B(q)); }
    }

    public void Dequantize(Tensor q, Tensor x)
    {
        long t0 = Begin();
        try { Inner.Dequantize(q, x); }
        finally { End(t0, "Dequantize", x.Numel, B(q) + B(x)); }
    }

    // ---------------- fused neural-network ops ----------------

    public void Softmax(Tensor x, Tensor y, bool log)
    {
        long t0 = Begin();
        try { Inner.Softmax(x, y, log); }
        finally { End(t0, log ? "LogSoftmax" : "Softmax", 4.0 * y.Numel, B(x) + B(y)); }
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log)
    {
        long t0 = Begin();
        try { Inner.SoftmaxBackward(y, dy, dx, log); }
        finally { End(t0, log ? "LogSoftmaxBackward" : "SoftmaxBackward", 3.0 * dx.Numel, B(y) + B(dy) + B(dx)); }
    }

    public void Gather(Tensor x, Tensor index, Tensor y, int axis)
    {
        long t0 = Begin();
        try { Inner.Gather(x, index, y, axis); }
        finally { End(t0, "Gather", 0, B(index) + 2 * B(y)); }
    }

    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis)
    {
        long t0 = Begin();
        try { Inner.ScatterAdd(dy, index, dx, axis); }
        finally { End(t0, "ScatterAdd", dy.Numel, B(index) + 3 * B(dy)); }
    }

    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps)
    {
        long t0 = Begin();
        try { Inner.RmsNorm(x, w, y, rstd, eps); }
        finally { End(t0, "RmsNorm", 4.0 * x.Numel, B(x) + B(w) + B(y) + B(rstd)); }
    }

    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw)
    {
        long t0 = Begin();
        try { Inner.RmsNormBackward(x, w, rstd, dy, dx, dw); }
        finally { End(t0, "RmsNormBackward", 10.0 * x.Numel, B(x) + B(w) + B(rstd) + B(dy) + B(dx) + 2 * B(dw)); }
    }

    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse)
    {
        long t0 = Begin();
        try { Inner.Rope(x, positions, y, theta, style, inverse); }
        finally { End(t0, inverse ? "RopeBackward" : "Rope", 6.0 * y.Numel, B(x) + B(positions) + B(y)); }
    }

    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale)
    {
        long t0 = Begin();
        try { Inner.Attention(q, k, v, keyMask, o, lse, scale); }
        finally { End(t0, "Attention", AttentionFlops(q, k), B(q) + B(k) + B(v) + B(keyMask) + B(o) + B(lse)); }
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale)
    {
        long t0 = Begin();
        try { Inner.AttentionBackward(q, k, v, keyMask, o, lse, dOut, dq, dk, dv, scale); }
        finally
        {
            End(t0, "AttentionBackward", 2.5 * AttentionFlops(q, k),
                B(q) + B(k) + B(v) + B(keyMask) + B(o) + B(lse) + B(dOut) + B(dq) + B(dk) + B(dv));
        }
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        long t0 = Begin();
        try { Inner.SwiGlu(gate, up, y); }
        finally { End(t0, "SwiGlu", 6.0 * y.Numel, B(gate) + B(up) + B(y)); }
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        long t0 = Begin();
        try { Inner.SwiGluBackward(gate, up, dy, dGate, dUp); }
        finally { End(t0, "SwiGluBackward", 12.0 * dy.Numel, B(gate) + B(up) + B(dy) + B(dGate) + B(dUp)); }
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex)
    {
        long t0 = Begin();
        try { Inner.CrossEntropy(logits, targets, losses, lse, ignoreIndex); }
        finally { End(t0, "CrossEntropy", 4.0 * logits.Numel, B(logits) + B(targets) + B(losses) + B(lse)); }
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex)
    {
        long t0 = Begin();
        try { Inner.CrossEntropyBackward(logits, targets, lse, dLosses, dLogits, ignoreIndex); }
        finally { End(t0, "CrossEntropyBackward", 4.0 * logits.Numel, B(logits) + B(targets) + B(lse) + B(dLosses) + B(dLogits)); }
    }

    // ---------------- optimizer ----------------

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step)
    {
        long t0 = Begin();
        try { Inner.AdamW(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step); }
        finally { End(t0, "AdamW", 15.0 * param.Numel, 2 * B(param) + B(grad) + 2 * B(m) + 2 * B(v)); }
    }

    public double SumOfSquares(Tensor x)
    {
        long t0 = Begin();
        try { return Inner.SumOfSquares(x); }
        finally { End(t0, "SumOfSquares", 2.0 * x.Numel, B(x)); }
    }
}
