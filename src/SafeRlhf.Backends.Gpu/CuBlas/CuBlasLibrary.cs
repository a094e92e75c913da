using System.Runtime.InteropServices;

namespace SafeRlhf.Backends.Gpu.CuBlas;

/// <summary>libcublas could not be loaded or lacks an entry point; names every file that was tried.</summary>
public sealed class CuBlasUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A cuBLAS call returned an error status (cublasStatus_t).</summary>
public sealed class CuBlasException(string call, int status)
    : Exception($"{call} failed with cublasStatus_t {status} ({Describe(status)})")
{
    public int Status { get; } = status;

    public static string Describe(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        _ => "unknown status",
    };
}

/// <summary>The few cuBLAS entry points the GPU backend calls, resolved at run time from the CUDA toolkit's
/// libcublas (no build-time dependency): handle management, stream binding, math mode and
/// cublasGemmEx and cublasGemmStridedBatchedEx (fp32 with TF32 tensor-op compute, or BF16 inputs with fp32 accumulation).</summary>
public sealed unsafe class CuBlasLibrary
{
    /// <summary>File names tried in order (Linux CUDA 12 / 11, then Windows).</summary>
    public static readonly string[] Candidates = ["libcublas.so.12", "libcublas.so.11", "libcublas.so", "cublas64_12.dll", "cublas64_11.dll"];

    // cublasOperation_t, cudaDataType, cublasComputeType_t, cublasMath_t, cublasGemmAlgo_t
    public const int OpN = 0, OpT = 1;
    public const int R32F = 0, R16BF = 14;
    public const int Compute32F = 68, Compute32FFastTf32 = 77;
    public const int DefaultMath = 0, Tf32TensorOpMath = 3;
    public const int GemmDefault = -1;

    private readonly delegate* unmanaged<IntPtr*, int> _create;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int> _setStream;
    private readonly delegate* unmanaged<IntPtr, int, int> _setMathMode;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int> _gemmStridedBatchedEx;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, IntPtr, int, int, void*, IntPtr, int, int, int, int, int> _gemmEx;

    private CuBlasLibrary(IntPtr handle, string path)
    {
        Path = path;
        _create = (delegate* unmanaged<IntPtr*, int>)Export(handle, path, "cublasCreate_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)Export(handle, path, "cublasDestroy_v2");
        _setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)Export(handle, path, "cublasSetStream_v2");
        _setMathMode = (delegate* unmanaged<IntPtr, int, int>)Export(handle, path, "cublasSetMathMode");
        _gemmStridedBatchedEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int>)
            Export(handle, path, "cublasGemmStridedBatchedEx");
        _gemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, IntPtr, int, int, void*, IntPtr, int, int, int, int, int>)
            Export(handle, path, "cublasGemmEx");
    }

    /// <summary>The file that was loaded.</summary>
    public string Path { get; }

    /// <summary>Loads libcublas from <paramref name="candidates"/> (default <see cref="Candidates"/>), or throws
    /// <see cref="CuBlasUnavailableException"/> naming every file tried.</summary>
    public static CuBlasLibrary Load(IReadOnlyList<string>? candidates = null)
    {
        candidates ??= Candidates;
        var errors = new List<string>();
        foreach (var name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out var handle)) return new CuBlasLibrary(handle, name);
            errors.Add(name);
        }
        throw new CuBlasUnavailableException(
            $"cuBLAS is not available: none of {string.Join(", ", errors)} could be loaded (install the CUDA toolkit's " +
            "libcublas or put it on the library path, or choose the ILGPU GEMM with GemmEngine.Ilgpu)");
    }

    private static IntPtr Export(IntPtr handle, string path, string name) =>
        NativeLibrary.TryGetExport(handle, name, out var address) ? address
            : throw new CuBlasUnavailableException($"cuBLAS: {path} has no entry point {name} (CUDA 11 or newer is required)");

    private static void Check(string call, int status)
    {
        if (status != 0) throw new CuBlasException(call, status);
    }

    public IntPtr Create()
    {
        IntPtr h;
        Check("cublasCreate_v2", _create(&h));
        return h;
    }

    public void Destroy(IntPtr handle) => Check("cublasDestroy_v2", _destroy(handle));

    public void SetStream(IntPtr handle, IntPtr stream) => Check("cublasSetStream_v2", _setStream(handle, stream));

    public void SetMathMode(IntPtr handle, int mode) => Check("cublasSetMathMode", _setMathMode(handle, mode));

    /// <summary>Refuses input and compute types cuBLAS has no fp32-output GEMM for, before the call: both inputs fp32
    /// (compute fp32 or TF32), or both BF16 (compute fp32: BF16 products accumulated in fp32). cuBLAS has no mixed
    /// BF16 × fp32 product, so an fp32 operand is never rounded to BF16 behind the caller's back.</summary>
    public static void CheckTypes(int aType, int bType, int computeType)
    {
        if (aType != bType)
            throw new ArgumentException($"cuBLAS GEMM: operand types {aType} and {bType} differ (both fp32 = {R32F} or both BF16 = {R16BF})");
        bool ok = aType == R32F ? computeType is Compute32F or Compute32FFastTf32 : aType == R16BF && computeType == Compute32F;
        if (!ok)
            throw new ArgumentException($"cuBLAS GEMM: operand type {aType} with compute type {computeType} is not supported " +
                $"(fp32 inputs: {Compute32F} or {Compute32FFastTf32}; BF16 inputs: {Compute32F})");
    }

    /// <summary>Column-major C = α·op(A)·op(B) + β·C with fp32 C, for one matrix (<paramref name="g"/>'s batch must be 1):
    /// cublasGemmEx with A and B of <paramref name="dataType"/> (fp32 or BF16, see <see cref="CheckTypes"/>).</summary>
    public void GemmEx(IntPtr handle, in GemmMapping g, IntPtr a, IntPtr b, IntPtr c, int dataType, int computeType, float beta)
    {
        if (g.Batch != 1) throw new ArgumentException($"cublasGemmEx multiplies one matrix, the mapping has batch {g.Batch} (use GemmStridedBatchedEx)");
        g.Validate();
        CheckTypes(dataType, dataType, computeType);
        float alpha = 1f;
        Check("cublasGemmEx", _gemmEx(handle, g.TransA, g.TransB, g.M, g.N, g.K, &alpha,
            a, dataType, g.Lda, b, dataType, g.Ldb, &beta, c, R32F, g.Ldc, computeType, GemmDefault));
    }

    /// <summary>Column-major C = α·op(A)·op(B) + β·C over a strided batch (see <see cref="GemmMapping"/> for row-major).</summary>
    public void GemmStridedBatchedEx(IntPtr handle, in GemmMapping g, IntPtr a, IntPtr b, IntPtr c, int dataType, int computeType, float beta)
    {
        g.Validate();
        CheckTypes(dataType, dataType, computeType);
        float alpha = 1f;
        Check("cublasGemmStridedBatchedEx", _gemmStridedBatchedEx(handle, g.TransA, g.TransB, g.M, g.N, g.K, &alpha,
            a, dataType, g.Lda, g.StrideA, b, dataType, g.Ldb, g.StrideB, &beta, c, R32F, g.Ldc, g.StrideC, g.Batch, computeType, GemmDefault));
    }
}
