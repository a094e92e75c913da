namespace SafeRlhf.Tensors;

/// <summary>One op through every layer. <paramref name="Name"/> is the <see cref="IBackend"/> method (and its backward is
/// Name + "Backward" where the interface has one), the <see cref="Ops"/> function when <paramref name="InOps"/>, the profiler
/// row and the GPU kernel (class Name + "Kernels", or method Name in a family class). <paramref name="Snake"/> is the same
/// name in snake case: the native <c>sr_{Snake}_…</c> functions and their file <c>native/src/{Snake}.cpp</c> when
/// <paramref name="Native"/>, and the kernel benchmark cases <c>{Snake}_…</c>.</summary>
public sealed record OpName(string Name, string Snake, bool InOps, bool Native, string[] GpuKernels);

/// <summary>The op-name table (in the manner of ggml's <c>GGML_OP_NAME</c>): every <see cref="IBackend"/> op once, with the
/// name each layer uses for it. A test holds every layer to it.</summary>
public static class OpNames
{
    public static IReadOnlyList<OpName> All { get; } =
    [
        new("Copy", "copy", InOps: false, Native: false, ["ElementwiseKernels.Copy"]),
        new("Fill", "fill", InOps: false, Native: false, ["ElementwiseKernels.Fill"]),
        new("Unary", "unary", InOps: false, Native: false, ["ElementwiseKernels.Unary", "ElementwiseKernels.UnaryBackward"]),
        new("Binary", "binary", InOps: false, Native: false, ["ElementwiseKernels.Binary"]),
        new("Where", "where", InOps: true, Native: false, ["ElementwiseKernels.Where"]),
        new("ReduceSum", "reduce_sum", InOps: false, Native: false, ["ElementwiseKernels.ReduceSum"]),
        new("MatMul", "matmul", InOps: true, Native: true, ["MatMulKernels.Gemm"]),
        // A matmul with the weight in a storage type: ggml blocks (Q8_0, Q4_0, K-quants) or BF16.
        new("QuantizedMatMul", "quantized_matmul", InOps: true, Native: true, ["QuantizedMatMulKernels.Gemm", "QuantizedMatMulKernels.Gemv"]),
        new("Quantize", "quantize", InOps: true, Native: true, ["QuantizedMatMulKernels.Quantize"]),
        new("Dequantize", "dequantize", InOps: true, Native: true, ["QuantizedMatMulKernels.Dequantize"]),
        new("Softmax", "softmax", InOps: true, Native: true, ["SoftmaxKernels.Forward", "SoftmaxKernels.Backward"]),
        new("Gather", "gather", InOps: true, Native: false, ["GatherKernels.Gather"]),
        new("ScatterAdd", "scatter_add", InOps: false, Native: false, ["GatherKernels.ScatterAdd"]),
        new("RmsNorm", "rmsnorm", InOps: true, Native: true, ["RmsNormKernels.Forward", "RmsNormKernels.BackwardInput", "RmsNormKernels.BackwardWeight"]),
        new("Rope", "rope", InOps: true, Native: true, ["RopeKernels.Forward"]),
        new("Attention", "attention", InOps: true, Native: true,
            ["AttentionKernels.Forward", "AttentionKernels.ForwardBf16Kv", "AttentionKernels.BackwardDelta", "AttentionKernels.Backward",
             "AttentionKernels.DecodePartial", "AttentionKernels.DecodePartialBf16Kv", "AttentionKernels.DecodeCombine"]),
        new("SwiGlu", "swiglu", InOps: true, Native: true, ["SwiGluKernels.Forward", "SwiGluKernels.Backward"]),
        new("CrossEntropy", "cross_entropy", InOps: true, Native: true, ["CrossEntropyKernels.Forward", "CrossEntropyKernels.Backward"]),
        new("AdamW", "adamw", InOps: false, Native: true, ["AdamWKernels.Step"]),
        new("SumOfSquares", "sum_of_squares", InOps: false, Native: true, []),
    ];

    /// <summary>Ops of optional backend capabilities (<c>BackendCapabilities.cs</c>), not on <see cref="IBackend"/>: the
    /// method of the capability interface carries the name.</summary>
    public static IReadOnlyList<OpName> Optional { get; } =
    [
        new("Sample", "sample", InOps: false, Native: false, ["SamplingKernels.Sample"]),
        // Q8_0/Q4_0 rows interleaved by 16, the layout the native CPU product reads in place.
        new("InterleaveRows", "interleave_rows", InOps: true, Native: true, []),
    ];

    /// <summary>The <see cref="IBackend"/> members that move memory rather than compute an op.</summary>
    public static IReadOnlyList<string> MemoryMembers { get; } = ["Name", "Allocate", "Memory", "ResetPeakMemory", "Write", "Read"];
}
