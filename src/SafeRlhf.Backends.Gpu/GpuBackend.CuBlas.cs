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

// Dense matrix products through cuBLAS (GemmEngine.CuBlas): operands staged contiguous, the row-major product mapped
// onto the column-major call (GemmMapping), on the accelerator's stream so it orders with the ILGPU kernels.
public sealed partial class GpuBackend
{
    private CuBlasLibrary? _cublas;
    private IntPtr _cublasHandle;

    /// <summary>The engine of <see cref="IBackend.MatMul"/> on this backend.</summary>
    public GemmEngine Gemm { get; private set; } = GemmEngine.Ilgpu;

    private void UseCuBlas()
    {
        if (_isCpu) throw new NotSupportedException("GemmEngine.CuBlas: cuBLAS needs a CUDA device, not the ILGPU CPU accelerator");
        _cublas = CuBlasLibrary.Load();
        _cublasHandle = _cublas.Create();
        _cublas.SetStream(_cublasHandle, ((CudaStream)_accelerator.DefaultStream).StreamPtr);
        _cublas.SetMathMode(_cublasHandle, CuBlasLibrary.Tf32TensorOpMath);
        Gemm = GemmEngine.CuBlas;
    }

    private void ReleaseCuBlas()
    {
        if (_cublas is not null && _cublasHandle != IntPtr.Zero) _cublas.Destroy(_cublasHandle);
        _cublasHandle = IntPtr.Zero;
    }

    /// <summary>c [batch, m, n] (+)= op(a)·op(b) with every operand staged contiguous fp32.</summary>
    private void CuBlasMatMul(Tensor a, Tensor b, Tensor c, bool transA, bool transB, bool accumulate, int batch, int m, int n, int k)
    {
        using var sa = In(a);
        using var sb = In(b);
        using var sc = accumulate ? InOut(c) : Out(c);
        int aCols = transA ? m : k, bCols = transB ? k : n;
        var g = GemmMapping.RowMajor(m, n, k, batch, transA, transB,
            aCols, (long)m * k, bCols, (long)k * n, n, (long)m * n);
        _cublas!.GemmStridedBatchedEx(_cublasHandle, g, Address(sb.F32), Address(sa.F32), Address(sc.F32),
            CuBlasLibrary.R32F, CuBlasLibrary.Compute32FFastTf32, accumulate ? 1f : 0f);
    }

    private static IntPtr Address(ArrayView<float> view) => view.LoadEffectiveAddressAsPtr();
}
