namespace SafeRlhf.Tensors.Meta;

/// <summary>The meta device: tensors with shapes and dtypes but no data. Every allocation is counted in the size
/// classes of the device pools (<see cref="SizeClasses"/>), tagged with <see cref="MemoryTags"/>; kernels do nothing
/// and reads return zeros (so sampling never meets EOS and runs to the maximum length: the worst case). A whole
/// training step "runs" on it at any model size to plan memory without the hardware.</summary>
public sealed class MetaBackend : IBackend
{
    private readonly Lock _lock = new();
    private readonly long[] _liveByCategory = new long[Enum.GetValues<MemoryCategory>().Length];
    private long _live, _peakLive, _reserved, _peakReserved, _allocations;
    private readonly Dictionary<string, PhasePeak> _phases = new(StringComparer.Ordinal);
    private long[] _atPeak = new long[Enum.GetValues<MemoryCategory>().Length];
    private long _wasteAtPeak;

    public string Name => "meta";

    /// <summary>The largest reserved total seen in one phase, with its split by category at that moment.</summary>
    public sealed record PhasePeak(string Phase, long ReservedBytes, IReadOnlyDictionary<MemoryCategory, long> LiveByCategory, long WasteBytes);

    /// <summary>Allocations made so far.</summary>
    public long Allocations
    {
        get { lock (_lock) return _allocations; }
    }

    /// <summary>Live bytes by category at the overall reserved peak, and the size-class waste then.</summary>
    public (IReadOnlyDictionary<MemoryCategory, long> LiveByCategory, long WasteBytes) AtPeak
    {
        get { lock (_lock) return (ToMap(_atPeak), _wasteAtPeak); }
    }

    /// <summary>Each phase's peak, in the order the phases first ran.</summary>
    public IReadOnlyList<PhasePeak> Phases
    {
        get { lock (_lock) return _phases.Values.ToList(); }
    }

    public Storage Allocate(DType dtype, long count)
    {
        long bytes = dtype.ByteCount(count);
        var category = MemoryTags.Category;
        long block = SizeClasses.Round(bytes);
        lock (_lock)
        {
            _allocations++;
            _live += bytes;
            _reserved += block;
            _liveByCategory[(int)category] += bytes;
            _peakLive = Math.Max(_peakLive, _live);
            if (_reserved > _peakReserved)
            {
                _peakReserved = _reserved;
                _atPeak = (long[])_liveByCategory.Clone();
                _wasteAtPeak = _reserved - _live;
            }
            if (MemoryTags.Phase is { } phase && (!_phases.TryGetValue(phase, out var p) || _reserved > p.ReservedBytes))
                _phases[phase] = new PhasePeak(phase, _reserved, ToMap(_liveByCategory), _reserved - _live);
        }
        return new MetaStorage(this, bytes, block, category);
    }

    private void Free(long bytes, long block, MemoryCategory category)
    {
        lock (_lock)
        {
            _live -= bytes;
            _reserved -= block;
            _liveByCategory[(int)category] -= bytes;
        }
    }

    private static Dictionary<MemoryCategory, long> ToMap(long[] values) =>
        Enum.GetValues<MemoryCategory>().ToDictionary(c => c, c => values[(int)c]);

    /// <summary>Live and reserved bytes as a pool with no cache would hold them.</summary>
    public MemoryStats Memory
    {
        get { lock (_lock) return new MemoryStats(_live, _peakLive, _reserved, _peakReserved, 0); }
    }

    public void ResetPeakMemory()
    {
        lock (_lock)
        {
            _peakLive = _live;
            _peakReserved = _reserved;
            _atPeak = (long[])_liveByCategory.Clone();
            _wasteAtPeak = _reserved - _live;
            _phases.Clear();
        }
    }

    private sealed class MetaStorage(MetaBackend backend, long bytes, long block, MemoryCategory category) : Storage(backend, bytes)
    {
        protected override void Free() => backend.Free(SizeInBytes, block, category);
    }

    // ---- data: none ----
    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src) { }
    public void Read(Storage src, long byteOffset, Span<byte> dst) => dst.Clear();
    public void Copy(Tensor src, Tensor dst) { }
    public void Fill(Tensor dst, double value) { }

    // ---- kernels: shapes were checked by the tensor layer; nothing to compute ----
    public void Unary(UnaryOp op, Tensor x, Tensor y, double a, double b) { }
    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor dy, Tensor dx, double a, double b) { }
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor c) { }
    public void Where(Tensor cond, Tensor a, Tensor b, Tensor y) { }
    public void ReduceSum(Tensor x, Tensor y) { }
    public void MatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate) { }
    public void QuantizedMatMul(Tensor x, Tensor w, Tensor y) { }
    public void QuantizedMatMulBackward(Tensor dy, Tensor w, Tensor dx) { }
    public void Quantize(Tensor x, Tensor q) { }
    public void Dequantize(Tensor q, Tensor x) { }
    public void Softmax(Tensor x, Tensor y, bool log) { }
    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx, bool log) { }
    public void Gather(Tensor x, Tensor index, Tensor y, int axis) { }
    public void ScatterAdd(Tensor dy, Tensor index, Tensor dx, int axis) { }
    public void RmsNorm(Tensor x, Tensor w, Tensor y, Tensor rstd, double eps) { }
    public void RmsNormBackward(Tensor x, Tensor w, Tensor rstd, Tensor dy, Tensor dx, Tensor dw) { }
    public void Rope(Tensor x, Tensor positions, Tensor y, double theta, RopeStyle style, bool inverse) { }
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, double scale) { }
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor? keyMask, Tensor o, Tensor lse, Tensor dOut,
        Tensor dq, Tensor dk, Tensor dv, double scale) { }
    public void SwiGlu(Tensor gate, Tensor up, Tensor y) { }
    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp) { }
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse, int ignoreIndex) { }
    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dLosses, Tensor dLogits, int ignoreIndex) { }
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, double lr, double beta1, double beta2, double eps,
        double weightDecay, int step) { }
    public double SumOfSquares(Tensor x) => 0;
}
