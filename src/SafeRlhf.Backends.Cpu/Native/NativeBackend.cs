using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>The CPU fast path: F32 kernels in libsaferlhf_native (AVX-512 / AVX2 / scalar, chosen at run time,
/// threaded on the native library's own pool). F64 tensors, non-contiguous operands and ops without a native kernel (strided or
/// converting copies, gather/scatter, where, reductions, most elementwise ops) are delegated explicitly to
/// <see cref="ReferenceBackend"/>, which shares the same <see cref="CpuStorage"/>.</summary>
public sealed unsafe partial class NativeBackend : IBackend
{
    private readonly ReferenceBackend _reference;

    /// <summary>A backend on the native kernels and the process's shared host memory pool; the first one applies the
    /// thread-count default of <see cref="Threads"/> unless a count was set before.</summary>
    /// <exception cref="ArgumentException">SAFERLHF_THREADS or OMP_NUM_THREADS holds an invalid value.</exception>
    public NativeBackend() : this(CpuAllocator.Shared) { }

    /// <summary>A backend whose tensors come from <paramref name="allocator"/> (its own counters, e.g. to plan memory).</summary>
    /// <exception cref="ArgumentException">SAFERLHF_THREADS or OMP_NUM_THREADS holds an invalid value.</exception>
    public NativeBackend(CpuAllocator allocator)
    {
        NativeProbe.EnsureConfigured();
        _reference = new ReferenceBackend(allocator);
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
    public CpuAllocator Allocator => _reference.Allocator;

    public Storage Allocate(DType dtype, long count) => new CpuStorage(this, Allocator, dtype.ByteCount(count));

    public MemoryStats Memory => Allocator.Stats;

    public void ResetPeakMemory() => Allocator.ResetPeak();

    public void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src) =>
        src.CopyTo(((CpuStorage)dst).Bytes[checked((int)byteOffset)..]);

    public void Read(Storage src, long byteOffset, Span<byte> dst) =>
        ((CpuStorage)src).Bytes.Slice(checked((int)byteOffset), dst.Length).CopyTo(dst);

    public void Copy(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType && src.IsContiguous && dst.IsContiguous && src.Shape.SameDims(dst.Shape))
        {
            int bytes = checked((int)src.DType.ByteCount(src.Numel));
            RawBytes(src)[..bytes].CopyTo(RawBytes(dst));
            return;
        }
        _reference.Copy(src, dst);
    }

    public void Fill(Tensor dst, double value)
    {
        if (IsF32(dst))
        {
            Floats(dst).Fill((float)value);
            return;
        }
        _reference.Fill(dst, value);
    }

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

    /// <summary>The tensor's bytes from its first element to the end of the storage.</summary>
    private static Span<byte> RawBytes(Tensor t) => ((CpuStorage)t.Storage).Bytes[checked((int)t.DType.ByteCount(t.Offset))..];

    /// <summary>The elements of a contiguous F32 tensor.</summary>
    private static Span<float> Floats(Tensor t) => ((CpuStorage)t.Storage).As<float>().Slice(checked((int)t.Offset), checked((int)t.Numel));

    private static void Check(NativeStatus status, string function) => NativeMethods.Check(status, function);
}
