using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using SafeRlhf.Backends.Gpu.CuBlas;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu;

/// <summary>Which code computes dense matrix products on a <see cref="GpuBackend"/>; chosen when the backend is created,
/// never switched silently.</summary>
public enum GemmEngine
{
    /// <summary>The hand-written ILGPU tile GEMM (fp32 on CUDA cores): the validated fallback and the oracle.</summary>
    Ilgpu,
    /// <summary>cuBLAS cublasGemmStridedBatchedEx with TF32 tensor-op compute for fp32 operands (CUDA only; creating
    /// the backend fails with <see cref="CuBlasUnavailableException"/> when libcublas cannot be loaded).</summary>
    CuBlas,
}

/// <summary>The precision in which the cuBLAS engine reads dense matrix product operands; chosen when the backend is
/// created.</summary>
public enum MatMulInputs
{
    /// <summary>fp32 operands (TF32 tensor-op compute), BF16 weights widened to fp32 exactly: the default.</summary>
    F32,
    /// <summary>Both operands of every dense product as BF16 (fp32 operands rounded to nearest even by the Copy kernel;
    /// BF16 weights read in place, without widening), products accumulated and written in fp32 (cublasGemmEx with
    /// CUBLAS_COMPUTE_32F). Master weights, gradients and optimizer moments stay fp32. CUDA with GemmEngine.CuBlas only.</summary>
    BF16,
}

// Dense matrix products through cuBLAS (GemmEngine.CuBlas): operands staged contiguous, the row-major product mapped
// onto the column-major call (GemmMapping), on the accelerator's stream so it orders with the ILGPU kernels.
public sealed partial class GpuBackend
{
    private CuBlasLibrary? _cublas;
    private IntPtr _cublasHandle;

    /// <summary>The engine of <see cref="IBackend.MatMul"/> on this backend.</summary>
    public GemmEngine Gemm { get; private set; } = GemmEngine.Ilgpu;

    /// <summary>The operand precision of the cuBLAS engine's dense products (always F32 on the ILGPU engine).</summary>
    public MatMulInputs Inputs { get; private set; } = MatMulInputs.F32;

    /// <summary>Refuses a combination of engine and operand precision that cannot run: BF16 operands need cuBLAS.</summary>
    public static void CheckEngine(GemmEngine gemm, MatMulInputs inputs)
    {
        if (inputs == MatMulInputs.BF16 && gemm != GemmEngine.CuBlas)
            throw new NotSupportedException($"MatMulInputs.BF16 needs GemmEngine.CuBlas on a CUDA device (got GemmEngine.{gemm}); the ILGPU GEMM computes in fp32 only");
    }

    private void UseCuBlas(MatMulInputs inputs)
    {
        if (_isCpu) throw new NotSupportedException("GemmEngine.CuBlas: cuBLAS needs a CUDA device, not the ILGPU CPU accelerator");
        _cublas = CuBlasLibrary.Load();
        _cublasHandle = _cublas.Create();
        _cublas.SetStream(_cublasHandle, ((CudaStream)_accelerator.DefaultStream).StreamPtr);
        _cublas.SetMathMode(_cublasHandle, CuBlasLibrary.Tf32TensorOpMath);
        Gemm = GemmEngine.CuBlas;
        Inputs = inputs;
    }

    private void ReleaseCuBlas()
    {
        if (_cublas is not null && _cublasHandle != IntPtr.Zero) _cublas.Destroy(_cublasHandle);
        _cublasHandle = IntPtr.Zero;
    }

    /// <summary>c [batch, m, n] (+)= op(a)·op(b) on cuBLAS in the operand type of <see cref="Inputs"/>.</summary>
    private void CuBlasMatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate, int batch, int m, int n, int k)
    {
        // a and b staged contiguous in the operand type (fp32 with TF32 math, or BF16 with fp32 compute; tensors
        // already of that type are read in place), c fp32.
        bool bf16 = Inputs == MatMulInputs.BF16;
        var operands = bf16 ? DType.BF16 : DType.F32;
        using var sa = new Staged(this, a, operands, read: true, write: false);
        using var sb = new Staged(this, b, operands, read: true, write: false);
        using var sc = accumulate ? InOut(c) : Out(c);
        int aCols = transA ? m : k, bCols = transB ? k : n;
        var g = GemmMapping.RowMajor(m, n, k, batch, transA, transB,
            aCols, (long)m * k, bCols, (long)k * n, n, (long)m * n);
        _cublas!.GemmStridedBatchedEx(_cublasHandle, g, Address(sb.Bytes), Address(sa.Bytes), Address(sc.F32),
            bf16 ? CuBlasLibrary.R16BF : CuBlasLibrary.R32F, bf16 ? CuBlasLibrary.Compute32F : CuBlasLibrary.Compute32FFastTf32,
            accumulate ? 1f : 0f);
    }

    private static IntPtr Address(ArrayView<byte> view) => view.LoadEffectiveAddressAsPtr();

    private static IntPtr Address(ArrayView<float> view) => view.LoadEffectiveAddressAsPtr();
}
