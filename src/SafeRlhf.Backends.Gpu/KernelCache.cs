using System.Linq.Expressions;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using SafeRlhf.Kernels;

namespace SafeRlhf.Backends.Gpu;

/// <summary>Every kernel of <c>SafeRlhf.Kernels</c>, compiled and loaded once per accelerator on first use.</summary>
internal sealed class KernelCache
{
    private readonly Accelerator _acc;

    public KernelCache(Accelerator accelerator)
    {
        _acc = accelerator;
        Copy = Load<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, CopyParams>>(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, CopyParams>(ElementwiseKernels.Copy));
        Fill = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, CopyParams>(ElementwiseKernels.Fill));
        Unary = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, UnaryParams>(ElementwiseKernels.Unary));
        UnaryBackward = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, UnaryBackwardParams>(ElementwiseKernels.UnaryBackward));
        Binary = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, TernaryParams>(ElementwiseKernels.Binary));
        Where = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, TernaryParams>(ElementwiseKernels.Where));
        ReduceSum = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<byte>, ReduceSumParams>(ElementwiseKernels.ReduceSum));
        Gemm = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams>(MatMulKernels.Gemm));
        QuantGemm = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, ArrayView<float>, GemmParams, int>(QuantizedMatMulKernels.Gemm));
        QuantGemv = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, ArrayView<float>, QuantGemvParams>(QuantizedMatMulKernels.Gemv));
        Quantize = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, QuantizeParams>(QuantizedMatMulKernels.Quantize));
        Dequantize = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, QuantizeParams>(QuantizedMatMulKernels.Dequantize));
        SoftmaxForward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, RowParams>(SoftmaxKernels.Forward));
        SoftmaxBackward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(SoftmaxKernels.Backward));
        CrossEntropyForward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, CrossEntropyParams>(CrossEntropyKernels.Forward));
        CrossEntropyBackward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CrossEntropyParams>(CrossEntropyKernels.Backward));
        RmsNormForward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RmsNormKernels.Forward));
        RmsNormBackwardInput = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RmsNormKernels.BackwardInput));
        RmsNormBackwardWeight = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>(RmsNormKernels.BackwardWeight));
        Rope = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, RopeParams>(RopeKernels.Forward));
        SwiGluForward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, long>(SwiGluKernels.Forward));
        SwiGluBackward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, long>(SwiGluKernels.Backward));
        AdamW = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWParams>(AdamWKernels.Step));
        Gather = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<int>, ArrayView<byte>, ArrayView<int>, GatherParams>(GatherKernels.Gather));
        ScatterAdd = Load(() => _acc.LoadStreamKernel<ArrayView<byte>, ArrayView<int>, ArrayView<float>, ArrayView<int>, GatherParams>(GatherKernels.ScatterAdd));
        AttentionForward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.Forward));
        AttentionForwardBf16Kv = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.ForwardBf16Kv));
        AttentionDelta = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.BackwardDelta));
        AttentionBackward = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.Backward));
        AttentionDecodePartial = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.DecodePartial));
        AttentionDecodePartialBf16Kv = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.DecodePartialBf16Kv));
        AttentionDecodeCombine = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>(AttentionKernels.DecodeCombine));
        Sample = Load(() => _acc.LoadStreamKernel<ArrayView<float>, ArrayView<double>, ArrayView<int>, ArrayView<double>, ArrayView<int>, SampleParams>(SamplingKernels.Sample));
    }

#pragma warning disable CS0649 // incremented through the expression tree of CountingLaunches
    private long _launches;
#pragma warning restore CS0649

    /// <summary>Kernel launches through this cache so far.</summary>
    public long Launches => Interlocked.Read(ref _launches);

    private Lazy<T> Load<T>(Func<T> loader) where T : Delegate =>
        new(() => CountingLaunches(loader()), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The launcher wrapped so that each call first increments <see cref="Launches"/>.</summary>
    private T CountingLaunches<T>(T launcher) where T : Delegate
    {
        var invoke = typeof(T).GetMethod("Invoke")!;
        var parameters = invoke.GetParameters().Select(p => Expression.Parameter(p.ParameterType, p.Name)).ToArray();
        var counter = Expression.Field(Expression.Constant(this), typeof(KernelCache).GetField(nameof(_launches), BindingFlags.NonPublic | BindingFlags.Instance)!);
        var increment = Expression.Call(typeof(Interlocked).GetMethod(nameof(Interlocked.Increment), [typeof(long).MakeByRefType()])!, counter);
        var body = Expression.Block(increment, Expression.Invoke(Expression.Constant(launcher), parameters));
        return Expression.Lambda<T>(body, parameters).Compile();
    }

    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, CopyParams>> Copy { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, CopyParams>> Fill { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, UnaryParams>> Unary { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, UnaryBackwardParams>> UnaryBackward { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, TernaryParams>> Binary { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, ArrayView<byte>, TernaryParams>> Where { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<byte>, ReduceSumParams>> ReduceSum { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmParams>> Gemm { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<float>, GemmParams, int>> QuantGemm { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<float>, QuantGemvParams>> QuantGemv { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<byte>, QuantizeParams>> Quantize { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<float>, QuantizeParams>> Dequantize { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, RowParams>> SoftmaxForward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>> SoftmaxBackward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, CrossEntropyParams>> CrossEntropyForward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, CrossEntropyParams>> CrossEntropyBackward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>> RmsNormForward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>> RmsNormBackwardInput { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RowParams>> RmsNormBackwardWeight { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, RopeParams>> Rope { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, long>> SwiGluForward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, long>> SwiGluBackward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AdamWParams>> AdamW { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<int>, ArrayView<byte>, ArrayView<int>, GatherParams>> Gather { get; }
    public Lazy<Action<KernelConfig, ArrayView<byte>, ArrayView<int>, ArrayView<float>, ArrayView<int>, GatherParams>> ScatterAdd { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionForward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionForwardBf16Kv { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionDelta { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionBackward { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionDecodePartial { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionDecodePartialBf16Kv { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionParams>> AttentionDecodeCombine { get; }
    public Lazy<Action<KernelConfig, ArrayView<float>, ArrayView<double>, ArrayView<int>, ArrayView<double>, ArrayView<int>, SampleParams>> Sample { get; }
}
