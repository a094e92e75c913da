using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

/// <summary>Runs every <see cref="IBackend"/> op as an ILGPU kernel: on an NVIDIA GPU through CUDA
/// (<see cref="CreateCuda"/>, name "cuda"), or on the ILGPU CPU accelerator (<see cref="CreateCpu"/>,
/// name "ilgpu-cpu"), which executes the very same kernels slowly and exists for testing without a GPU.
/// Heavy ops compute on contiguous fp32 data; other dtypes and strided views are first converted on the
/// device by the strided copy kernel (and written back the same way). Elementwise ops read and write any
/// element dtype and any strides directly.</summary>
public sealed partial class GpuBackend : IBackend, IDisposable
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly BufferPool _pool;
    private readonly KernelCache _kernels;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _error;
    private readonly bool _isCpu;
    private bool _disposed;

    private GpuBackend(Context context, Accelerator accelerator, bool isCpu, long poolCacheBytes)
    {
        _context = context;
        _accelerator = accelerator;
        _isCpu = isCpu;
        _pool = new BufferPool(accelerator, poolCacheBytes);
        _kernels = new KernelCache(accelerator);
        _error = accelerator.Allocate1D<int>(2 * ErrorSlots);
        _error.MemSetToZero();
        Name = isCpu ? "ilgpu-cpu" : "cuda";
    }

    public string Name { get; }

    /// <summary>The accelerator's description (device name, warp size, group limits).</summary>
    public string AcceleratorInfo =>
        $"{_accelerator.Name} ({_accelerator.AcceleratorType}, warp {_accelerator.WarpSize}, max group {_accelerator.MaxNumThreadsPerGroup})";

    /// <summary>True when ILGPU finds a CUDA device (driver present and at least one GPU).</summary>
    public static bool IsCudaAvailable
    {
        get
        {
            try
            {
                using var context = Context.Create(builder => builder.Cuda());
                return context.GetCudaDevices().Count > 0;
            }
            catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException)
            {
                return false;
            }
        }
    }

    /// <summary>A backend on CUDA device <paramref name="deviceIndex"/> whose dense products use <paramref name="gemm"/>
    /// (cuBLAS must load, or this throws <see cref="CuBlas.CuBlasUnavailableException"/>) with operands read as
    /// <paramref name="inputs"/> (BF16 needs cuBLAS, see <see cref="CheckEngine"/>).</summary>
    public static GpuBackend CreateCuda(int deviceIndex = 0, GemmEngine gemm = GemmEngine.Ilgpu, MatMulInputs inputs = MatMulInputs.F32)
    {
        CheckEngine(gemm, inputs);
        var context = Context.Create(builder => builder.Cuda().EnableAlgorithms().Math(MathMode.Default));
        if (context.GetCudaDevices().Count <= deviceIndex)
        {
            context.Dispose();
            throw new InvalidOperationException("no CUDA device found (is the NVIDIA driver installed?)");
        }
        var accelerator = context.CreateCudaAccelerator(deviceIndex);
        var backend = new GpuBackend(context, accelerator, isCpu: false, poolCacheBytes: 2L << 30);
        if (gemm == GemmEngine.CuBlas)
        {
            try { backend.UseCuBlas(inputs); }
            catch
            {
                backend.Dispose();
                throw;
            }
        }
        return backend;
    }

    /// <summary>A backend on the ILGPU CPU accelerator with groups of <paramref name="groupSize"/> threads
    /// (4, 16, 64 or 256; a warp is √groupSize threads). Small groups keep the emulated barriers cheap.</summary>
    public static GpuBackend CreateCpu(int groupSize = 16, GemmEngine gemm = GemmEngine.Ilgpu)
    {
        if (gemm == GemmEngine.CuBlas)
            throw new NotSupportedException("GemmEngine.CuBlas: cuBLAS needs a CUDA device, not the ILGPU CPU accelerator");
        int warp = groupSize switch
        {
            4 => 2,
            16 => 4,
            64 => 8,
            256 => 16,
            _ => throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "group size must be 4, 16, 64 or 256"),
        };
        var device = new CPUDevice(warp, groupSize / warp, Math.Max(1, Environment.ProcessorCount));
        var context = Context.Create(builder => builder.CPU(device).EnableAlgorithms().Math(MathMode.Default));
        var accelerator = context.CreateCPUAccelerator(0);
        return new GpuBackend(context, accelerator, isCpu: true, poolCacheBytes: 256L << 20);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _accelerator.Synchronize();
        ReleaseCuBlas();
        ReleaseWeightScratch();
        _pool.Dispose();
        _error.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    // ---------------- memory ----------------

    public Storage Allocate(DType dtype, long count)
    {
        long bytes = dtype.ByteCount(count);
        var buffer = _pool.Rent(bytes);
        MemsetZero(buffer.View);
        return new GpuStorage(this, _pool, buffer, bytes);
    }

    public MemoryStats Memory => _pool.Stats;

    public void ResetPeakMemory() => _pool.ResetPeak();

    public unsafe void Write(Storage dst, long byteOffset, ReadOnlySpan<byte> src)
    {
        var s = Own(dst);
        CheckRange(s, byteOffset, src.Length);
        if (src.Length == 0) return;
        // Ordered behind earlier kernels on the accelerator's stream; the copy returns once the host bytes are consumed.
        // ILGPU takes the host address as a raw pointer, so the bytes stay pinned until it returns: a garbage
        // collection on another thread would otherwise move a managed array under the copy.
        Interlocked.Increment(ref _uploads);
        fixed (byte* host = src) s.Bytes.SubView(byteOffset, src.Length).CopyFromCPU(ref *host, src.Length);
    }

    public unsafe void Read(Storage src, long byteOffset, Span<byte> dst)
    {
        var s = Own(src);
        CheckRange(s, byteOffset, dst.Length);
        if (dst.Length == 0) return;
        Wait();
        Interlocked.Increment(ref _readbacks);
        fixed (byte* host = dst) s.Bytes.SubView(byteOffset, dst.Length).CopyToCPU(ref *host, dst.Length);  // pinned, as in Write
        CheckErrors();
    }

    private static void CheckRange(GpuStorage s, long offset, long length)
    {
        if (offset < 0 || offset + length > s.SizeInBytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes [{offset}, {offset + length}) outside storage of {s.SizeInBytes} bytes");
    }

    private GpuStorage Own(Storage storage) =>
        storage as GpuStorage is { } s && ReferenceEquals(s.Backend, this)
            ? s
            : throw new ArgumentException($"storage belongs to backend '{storage.Backend.Name}', not this {Name} backend");

    private ArrayView<byte> Raw(Tensor t) => Own(t.Storage).Bytes;

    // ---------------- launch shapes ----------------

    private int MaxGroup => _accelerator.MaxNumThreadsPerGroup;
    private int WarpSize => _accelerator.WarpSize;

    /// <summary>1-D grid-stride launch over <paramref name="count"/> items.</summary>
    private KernelConfig Linear(long count)
    {
        int group = Math.Min(256, MaxGroup);
        long groups = Math.Max(1, (count + group - 1) / group);
        int cap = _isCpu ? 4 * _accelerator.NumMultiprocessors : 65535;
        return new KernelConfig(new Index1D((int)Math.Min(groups, cap)), new Index1D(group));
    }

    /// <summary>One group per row (grid-stride over rows); group size a power of two between the warp size
    /// and min(256, max group), near the row length. <paramref name="sharedFloats"/> of dynamic shared memory.</summary>
    private KernelConfig PerRow(long rows, long cols, int sharedFloats)
    {
        int limit = Math.Min(256, MaxGroup);
        int group = WarpSize;
        while (group < limit && group < cols) group *= 2;
        int grid = (int)Math.Clamp(rows, 1, _isCpu ? 4L * _accelerator.NumMultiprocessors : 65535L);
        return new KernelConfig(new Index1D(grid), new Index1D(group), SharedMemoryConfig.RequestDynamic<float>(Math.Max(1, sharedFloats)));
    }

    /// <summary>Side of the square GEMM thread group (16 on a GPU: 256 threads computing a 64×64 tile).</summary>
    private int GemmSide => MaxGroup >= 256 ? 16 : (int)Math.Sqrt(MaxGroup);

    // ---------------- dtype codes and layouts ----------------

    private static int Code(DType dtype) => dtype switch
    {
        DType.F32 => DTypeCode.F32,
        DType.F64 => DTypeCode.F64,
        DType.BF16 => DTypeCode.BF16,
        DType.F16 => DTypeCode.F16,
        DType.I32 => DTypeCode.I32,
        _ => throw new TensorDTypeException($"{dtype} is not an element type (quantized tensors only Copy, Quantize, Dequantize and QuantizedMatMul)"),
    };

    private static Operand OperandOf(Tensor t) => new(Code(t.DType), Layouts.Of(t));

    // ---------------- staging to contiguous fp32 / i32 ----------------

    /// <summary>A contiguous view of a tensor in a given dtype: the tensor's own memory when it already is
    /// one, otherwise a pooled temporary filled (when read) by the copy kernel and, when written, copied back
    /// into the tensor on dispose.</summary>
    private sealed class Staged : IDisposable
    {
        private readonly GpuBackend _backend;
        private readonly Tensor _tensor;
        private readonly Tensor? _temp;
        private readonly bool _write;

        public Staged(GpuBackend backend, Tensor tensor, DType dtype, bool read, bool write, bool batchStrided = false)
        {
            _backend = backend;
            _tensor = tensor;
            _write = write;
            if (tensor.DType == dtype && tensor.IsContiguous)
            {
                var raw = backend.Raw(tensor);
                long bytes = dtype.ByteCount(1);
                Bytes = raw.SubView(tensor.Offset * bytes, Math.Max(1, tensor.Numel) * bytes);
            }
            else if (batchStrided && tensor.DType == dtype && tensor.Shape.IsPackedBelowFirstAxis && tensor.Numel > 0)
            {
                // The span from the first to the last element, read in place with the kernel's batch stride.
                long bytes = dtype.ByteCount(1);
                long packed = tensor.Numel / tensor.Dim(0);
                long span = (tensor.Dim(0) - 1) * tensor.Shape.FirstAxisStride + packed;
                Bytes = backend.Raw(tensor).SubView(tensor.Offset * bytes, span * bytes);
            }
            else
            {
                // every element is written before it is read: by the copy below, or by the kernel for outputs
                _temp = Tensor.Uninitialized(tensor.Device, dtype, tensor.Shape.ToArray());
                if (read) backend.Copy(tensor, _temp);
                Bytes = backend.Raw(_temp).SubView(0, dtype.ByteCount(Math.Max(1, tensor.Numel)));
            }
        }

        public ArrayView<byte> Bytes { get; }
        public ArrayView<float> F32 => Bytes.Cast<float>();
        public ArrayView<int> I32 => Bytes.Cast<int>();

        public void Dispose()
        {
            if (_temp is null) return;
            if (_write) _backend.Copy(_temp, _tensor);
            _temp.Dispose();
        }
    }

    private Staged In(Tensor t) => new(this, t, DType.F32, read: true, write: false);
    /// <summary>An fp32 input whose entries along axis 0 are packed but may lie any distance apart (read in place).</summary>
    private Staged InBatchStrided(Tensor t) => new(this, t, DType.F32, read: true, write: false, batchStrided: true);
    private Staged Out(Tensor t) => new(this, t, DType.F32, read: false, write: true);
    private Staged InOut(Tensor t) => new(this, t, DType.F32, read: true, write: true);
    private Staged Index(Tensor t) => new(this, t, DType.I32, read: true, write: false);
}
