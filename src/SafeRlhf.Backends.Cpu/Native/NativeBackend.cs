using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The CPU fast path on F32: the fused and matrix kernels in libsaferlhf_native (AVX-512 / AVX2 / scalar, chosen at
/// run time, threaded on the native library's own pool), elementwise ops and reductions as vectorised
/// <see cref="System.Numerics.Tensors.TensorPrimitives"/> calls (broadcast and strided operands walked row by row), copies
/// and dtype conversions in C#. Every method runs here: a dtype or layout without a kernel (F64 arithmetic, a
/// non-contiguous operand where the tensor layer promises a contiguous one) throws <see cref="BackendNotSupportedException"/>
/// naming the op, the dtypes and the layouts; nothing is routed to the double-precision reference backend.</summary>
public sealed unsafe partial class NativeBackend : IBackend
{

    /// <summary>A backend on the native kernels and the process's shared host memory pool; the first one applies the
    /// thread-count default of <see cref="Threads"/> unless a count was set before.</summary>
    /// <exception cref="ArgumentException">SAFERLHF_THREADS or OMP_NUM_THREADS holds an invalid value.</exception>
    public NativeBackend() : this(CpuAllocator.Shared) { }

    /// <summary>A backend whose tensors come from <paramref name="allocator"/> (its own counters, e.g. to plan memory).</summary>
    /// <exception cref="ArgumentException">SAFERLHF_THREADS or OMP_NUM_THREADS holds an invalid value.</exception>
    public NativeBackend(CpuAllocator allocator)
    {
        NativeProbe.EnsureConfigured();
        Allocator = allocator;
    }

    public string Name => "cpu";

    /// <summary>Threads the native kernels use (process-wide); 0 restores the default: SAFERLHF_THREADS, then
    /// OMP_NUM_THREADS, then the cores this process may use (<see cref="ThreadCount"/>).</summary>
    public static int Threads
    {
        get => NativeProbe.Threads;
        set => NativeProbe.Threads = value;
    }

    /// <summary>Caps the instruction set of the GEMM and quantized kernels (process-wide), so the AVX2 and
    /// scalar paths can be exercised on an AVX-512 machine; <see cref="NativeIsa.Avx512"/> restores the default.</summary>
    public static void SetMaxIsa(NativeIsa isa) => NativeMethods.Check(NativeMethods.sr_set_max_isa((int)isa), "sr_set_max_isa");

    // ---------------- memory ----------------

    /// <summary>The host memory pool this backend allocates from.</summary>
    public CpuAllocator Allocator { get; }

    public Storage Allocate(DType dtype, long count) => new CpuStorage(this, Allocator, dtype.ByteCount(count));

    public MemoryStats Memory => Allocator.Stats;

    public void ResetPeakMemory() => Allocator.ResetPeak();

    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src) =>
        src.CopyTo(((CpuStorage)dst).Bytes[checked((int)byteOffset)..]);

    public void Read(Storage src, long byteOffset, Span<byte> dst) =>
        ((CpuStorage)src).Bytes.Slice(checked((int)byteOffset), dst.Length).CopyTo(dst);

    // ---------------- helpers ----------------

    /// <summary>F32 and contiguous (the layout every native kernel takes).</summary>
    private static bool IsF32(Tensor t) => t.DType == DType.F32 && t.IsContiguous;

    private static bool AllF32(params ReadOnlySpan<Tensor> ts)
    {
        foreach (var t in ts)
            if (!IsF32(t)) return false;
        return true;
    }

    private static bool IsIndex(Tensor t) => t.DType == DType.I32 && t.IsContiguous;

    /// <summary>Throws unless every tensor is F32 and contiguous.</summary>
    private static void RequireF32(string op, params ReadOnlySpan<Tensor> ts)
    {
        if (!AllF32(ts)) throw Unsupported(op, ts);
    }

    /// <summary>Throws unless every tensor is F32 (any strides, broadcast included).</summary>
    private static void RequireF32Any(string op, params ReadOnlySpan<Tensor> ts)
    {
        foreach (var t in ts)
            if (t.DType != DType.F32) throw Unsupported(op, ts);
    }

    private static void RequireSameDims(string op, params ReadOnlySpan<Tensor> ts)
    {
        foreach (var t in ts)
            if (!t.Shape.SameDims(ts[0].Shape))
                throw new TensorShapeException($"{op}: operand dims differ ({string.Join(", ", ts.ToArray().Select(x => x.Shape.ToString()))})");
    }

    /// <summary>The error for an op called on dtypes or layouts this backend has no kernel for.</summary>
    private static BackendNotSupportedException Unsupported(string op, params ReadOnlySpan<Tensor?> ts) =>
        new($"cpu: {op} has no kernel for " + string.Join(", ", ts.ToArray().OfType<Tensor>().Select(Describe)) +
            " (the native backend runs F32 and contiguous operands where the op takes them; use the reference backend for F64)");

    private static string Describe(Tensor t) => $"{t.DType} {t.Shape} {(t.IsContiguous ? "contiguous" : "strided")}";

    /// <summary>The tensor's bytes from its first element to the end of the storage.</summary>
    private static Span<byte> RawBytes(Tensor t) => ((CpuStorage)t.Storage).Bytes[checked((int)t.DType.ByteCount(t.Offset))..];

    /// <summary>The whole storage of an F32 tensor (for strided walks that index it by element offset).</summary>
    private static Span<float> AllFloats(Tensor t) => ((CpuStorage)t.Storage).As<float>();

    /// <summary>The elements of a contiguous F32 tensor.</summary>
    private static Span<float> Floats(Tensor t) => ((CpuStorage)t.Storage).As<float>().Slice(checked((int)t.Offset), checked((int)t.Numel));

    private static void Check(NativeStatus status, string function) => NativeMethods.Check(status, function);
}
