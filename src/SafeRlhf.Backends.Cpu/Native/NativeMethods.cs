using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: InternalsVisibleTo("SafeRlhf.Backends.Cpu.Tests")]
[assembly: InternalsVisibleTo("SafeRlhf.Benchmarks")]

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>Status codes of the C ABI (native/include/saferlhf.h, <c>sr_status</c>).</summary>
public enum NativeStatus
{
    Ok = 0,
    InvalidArgument = 1,
    Unsupported = 2,
    OutOfMemory = 3,
    Internal = 4,
    /// <summary>An index argument (a target, a token id) outside its range: surfaces as <see cref="SafeRlhf.Tensors.TensorIndexException"/>.</summary>
    IndexOutOfRange = 5,
}

/// <summary>Instruction-set ceilings for the GEMM and quantized dot-product dispatch (<c>sr_set_max_isa</c>).</summary>
public enum NativeIsa
{
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
    /// <summary>AVX-512 without VBMI (Skylake-X / Cascade Lake class): the quantized matmul's one-row kernels.</summary>
    Avx512NoVbmi = 3,
}

/// <summary>A native kernel returned an error status; the message carries the native error text.</summary>
public sealed class NativeKernelException(string function, NativeStatus status, string nativeMessage)
    : SafeRlhf.Tensors.BackendException($"{function} failed ({status}): {nativeMessage}")
{
    /// <summary>The C entry point that failed.</summary>
    public string Function { get; } = function;
    public NativeStatus Status { get; } = status;
    /// <summary>The text of <c>sr_last_error()</c> right after the failing call.</summary>
    public string NativeMessage { get; } = nativeMessage;
}

/// <summary>P/Invoke bindings to libsaferlhf_native, one per <c>sr_</c> export of native/include/saferlhf.h. The bindings
/// return the raw <see cref="NativeStatus"/>; every caller passes it to <see cref="Check"/>, which throws
/// <see cref="NativeKernelException"/> with the native error text on failure (an index out of range: a
/// <see cref="SafeRlhf.Tensors.TensorIndexException"/>, as on every backend).</summary>
internal static unsafe partial class NativeMethods
{
    private const string Lib = "saferlhf_native";

    public const int Q8_0 = 0, Q4_0 = 1, Q4_K = 2, Q5_K = 3, Q6_K = 4, BF16 = 5, BF16Dot = 6, Q8_0X16 = 7, Q4_0X16 = 8, Q4_KX16 = 9, Q5_KX16 = 10, Q6_KX16 = 11;
    public const int RopeInterleaved = 0, RopeHalf = 1;

    /// <summary>Throws when <paramref name="status"/> is not OK (reads sr_last_error on this thread).</summary>
    public static void Check(NativeStatus status, string function)
    {
        if (status == NativeStatus.Ok) return;
        string message = Marshal.PtrToStringUTF8(sr_last_error()) ?? "";
        if (status == NativeStatus.IndexOutOfRange) throw new SafeRlhf.Tensors.TensorIndexException(message);
        throw new NativeKernelException(function, status, message);
    }

    [LibraryImport(Lib)] internal static partial IntPtr sr_last_error();
    [LibraryImport(Lib)] internal static partial NativeStatus sr_version(out IntPtr version);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_cpu_features(out uint features, byte* brand, int brandLen);

    [LibraryImport(Lib)] internal static partial NativeStatus sr_set_num_threads(int threads);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_get_num_threads(out int threads);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_set_max_isa(int level);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_probe_fma_f32(double seconds, int threads, out double gflops);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_probe_stream(long bytes, double seconds, int threads, out double gbps);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_matmul_f32(int batch, int m, int n, int k, float alpha,
        float* a, long lda, long strideA, int transA, float* b, long ldb, long strideB, int transB,
        float beta, float* c, long ldc, long strideC);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_rmsnorm_forward_f32(float* x, float* w, float* y, float* rstd, long rows, long dim, float eps);
    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_rmsnorm_backward_f32(float* x, float* w, float* rstd, float* dy, float* dx, float* dw, long rows, long dim);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_rope_f32(float* x, int* positions, float* y, long batch, long seq, long heads, long headDim,
        double theta, int style, int inverse);

    [LibraryImport(Lib)] internal static partial NativeStatus sr_swiglu_forward_f32(float* gate, float* up, float* y, long n);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_swiglu_backward_f32(float* gate, float* up, float* dy, float* dGate, float* dUp, long n);

    [LibraryImport(Lib)] internal static partial NativeStatus sr_softmax_forward_f32(float* x, float* y, long rows, long dim, int log);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_softmax_backward_f32(float* y, float* dy, float* dx, long rows, long dim, int log);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_cross_entropy_forward_f32(float* logits, int* targets, float* losses, float* lse, long rows, long vocab, int ignoreIndex);
    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_cross_entropy_backward_f32(float* logits, int* targets, float* lse, float* dLosses, float* dLogits,
        long rows, long vocab, int ignoreIndex);

    [LibraryImport(Lib)] internal static partial NativeStatus sr_sum_of_squares_f32(float* x, long n, double* result);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_adamw_f32(float* param, float* grad, float* m, float* v, long n, double lr, double beta1, double beta2,
        double eps, double weightDecay, int step);

    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_attention_forward_f32(float* q, float* k, float* v, float* keyMask, float* o, float* lse,
        long batch, long tLen, long sLen, long heads, long kvHeads, long headDim, long kvBatchStride, float scale);
    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_attention_forward_f32_bf16kv(float* q, ushort* k, ushort* v, float* keyMask, float* o, float* lse,
        long batch, long tLen, long sLen, long heads, long kvHeads, long headDim, long kvBatchStride, float scale);
    [LibraryImport(Lib)]
    internal static partial NativeStatus sr_attention_backward_f32(float* q, float* k, float* v, float* keyMask, float* o, float* lse, float* dOut,
        float* dq, float* dk, float* dv, long batch, long tLen, long sLen, long heads, long kvHeads, long headDim, float scale);

    [LibraryImport(Lib)] internal static partial NativeStatus sr_quant_block_bytes(int type, out int bytes);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_quantize_f32(int type, float* x, void* blocks, long n);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_dequantize_f32(int type, void* blocks, float* x, long n);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_interleave_rows_q(int type, void* src, void* dst, long m, long k);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_dequantize_f32_rows(int type, void* w, float* x, long m, long k);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_quantized_matmul_f32(int type, float* x, void* w, float* y, long n, long m, long k);
    [LibraryImport(Lib)] internal static partial NativeStatus sr_quantized_matmul_backward_f32(int type, float* dy, void* w, float* dx, long n, long m, long k);

}
