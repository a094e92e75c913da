using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.TestSupport.GradCheck;

namespace SafeRlhf.Tensors.Tests;

/// <summary>Finite-difference gradient checks (central differences evaluated in double, tiny random shapes,
/// fixed seeds) for every op with a backward. The same bodies run on every backend: the reference in F64 with
/// tight tolerances, the native and ILGPU backends in F32 with tolerances for single precision.</summary>
public abstract class GradCheckTests
{
    protected abstract Device Dev { get; }
    protected virtual DType DType => DType.F32;
    protected virtual double Eps => 1e-2;
    protected virtual double Atol => 2e-3;
    protected virtual double Rtol => 2e-2;

    private static Rng R(ulong seed = 1) => new(seed);

    private Tensor Ints(int[] values, params int[] dims) => Tensor.FromArray(Dev, values, dims);

    private void Check(Device device, Func<Tensor[], Tensor> f, Input[] inputs) =>
        GradCheck.Check(device, f, inputs, DType, Eps, Atol, Rtol);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatMulBatched(bool transA, bool transB)
    {
        var rng = R();
        var a = transA ? Random(rng, 2, 4, 3) : Random(rng, 2, 3, 4);
        var b = transB ? Random(rng, 2, 5, 4) : Random(rng, 2, 4, 5);
        Check(Dev, x => Ops.MatMul(x[0], x[1], transA, transB), [a, b]);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void MatMulSharedWeight(bool transA, bool transB)
    {
        var rng = R(2);
        var a = transA ? Random(rng, 2, 3, 4, 2) : Random(rng, 2, 3, 2, 4);
        var w = transB ? Random(rng, 5, 4) : Random(rng, 4, 5);
        Check(Dev, x => Ops.MatMul(x[0], x[1], transA, transB), [a, w]);
    }

    [Fact] public void AddBroadcast() => Check(Dev, x => x[0] + x[1], [Random(R(), 3, 1, 4), Random(R(2), 2, 1)]);
    [Fact] public void SubBroadcast() => Check(Dev, x => x[0] - x[1], [Random(R(), 2, 3), Random(R(2), 3)]);
    [Fact] public void MulBroadcast() => Check(Dev, x => x[0] * x[1], [Random(R(), 2, 3, 4), Random(R(2), 1, 3, 1)]);
    [Fact] public void DivBroadcast() => Check(Dev, x => x[0] / x[1], [Random(R(), 2, 3), Positive(R(2), 2, 1)]);
    [Fact] public void Scale() => Check(Dev, x => x[0].Scale(-1.7), [Random(R(), 3, 2)]);
    [Fact] public void AddScalar() => Check(Dev, x => x[0].AddScalar(0.3), [Random(R(), 3, 2)]);
    [Fact] public void Neg() => Check(Dev, x => -x[0], [Random(R(), 5)]);
    [Fact] public void Square() => Check(Dev, x => x[0].Square(), [Random(R(), 5)]);
    [Fact] public void SumAxes() => Check(Dev, x => x[0].Sum([0, 2]), [Random(R(), 2, 3, 4)]);
    [Fact] public void SumAll() => Check(Dev, x => x[0].Sum(), [Random(R(), 2, 3)]);
    [Fact] public void SumKeepDim() => Check(Dev, x => x[0].Sum(1, keepDim: true), [Random(R(), 2, 3, 2)]);
    [Fact] public void MeanAxes() => Check(Dev, x => x[0].Mean([-1]), [Random(R(), 3, 4)]);
    [Fact] public void Exp() => Check(Dev, x => x[0].Exp(), [Random(R(), 2, 3)]);
    [Fact] public void Log() => Check(Dev, x => x[0].Log(), [Positive(R(), 2, 3)]);
    [Fact] public void Sqrt() => Check(Dev, x => x[0].Sqrt(), [Positive(R(), 2, 3)]);
    [Fact] public void Rsqrt() => Check(Dev, x => x[0].Rsqrt(), [Positive(R(), 2, 3)]);
    [Fact] public void Silu() => Check(Dev, x => x[0].Silu(), [Random(R(), 2, 5)]);
    [Fact] public void Sigmoid() => Check(Dev, x => x[0].Sigmoid(), [Random(R(), 2, 5)]);
    [Fact] public void LogSigmoid() => Check(Dev, x => x[0].Scale(8).LogSigmoid(), [Random(R(), 2, 5)]);
    [Fact] public void Clamp() => Check(Dev, x => x[0].Clamp(-0.5, 0.4), [Random(R(3), 3, 4)]);
    [Fact] public void Minimum() => Check(Dev, x => Ops.Minimum(x[0], x[1]), [Random(R(), 3, 4), Random(R(2), 4)]);
    [Fact] public void Maximum() => Check(Dev, x => Ops.Maximum(x[0], x[1]), [Random(R(), 3, 4), Random(R(2), 3, 1)]);
    [Fact] public void Softmax() => Check(Dev, x => x[0].Softmax(), [Random(R(), 2, 3, 5)]);
    [Fact] public void LogSoftmax() => Check(Dev, x => x[0].LogSoftmax(), [Random(R(), 3, 6)]);

    [Fact]
    public void Where()
    {
        var cond = Constant([1, 0, 0, 1, 1, 0], 2, 3);
        Check(Dev, x => Ops.Where(x[2], x[0], x[1]), [Random(R(), 2, 3), Random(R(2), 3), cond]);
    }

    [Fact]
    public void GatherLastAxis() =>
        Check(Dev, x => x[0].LogSoftmax().Gather(-1, Ints([2, 0, 4, 4, 1, 3], 3, 2)), [Random(R(), 3, 5)]);

    [Fact]
    public void GatherMiddleAxis() =>
        Check(Dev, x => x[0].Gather(1, Ints([0, 2, 1, 1, 0, 0, 2, 1], 2, 1, 4)), [Random(R(), 2, 3, 4)]);

    [Fact]
    public void Embedding() =>
        Check(Dev, x => Ops.Embedding(x[0], Ints([3, 1, 3, 0, 2, 1], 2, 3)), [Random(R(), 4, 5)]);

    [Fact]
    public void RmsNorm() =>
        Check(Dev, x => Ops.RmsNorm(x[0], x[1], 1e-5), [Random(R(), 2, 3, 6), Random(R(2), 6)]);

    [Theory]
    [InlineData(RopeStyle.Interleaved)]
    [InlineData(RopeStyle.Half)]
    public void Rope(RopeStyle style) =>
        Check(Dev, x => Ops.Rope(x[0], Ints([0, 1, 2, 5, 3, 4], 2, 3), 10000, style), [Random(R(), 2, 3, 2, 4)]);

    [Fact]
    public void AttentionGqaCausal() =>
        Check(Dev, x => Ops.Attention(x[0], x[1], x[2]), [Random(R(1), 2, 4, 4, 3), Random(R(2), 2, 4, 2, 3), Random(R(3), 2, 4, 2, 3)]);

    [Fact]
    public void AttentionWithPaddingMaskAndKvCacheOffset()
    {
        // Batch row 0 is left-padded (first key masked), S > T as in cached decoding.
        var mask = GradCheck.MakeTensor(Dev, DType, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [2, 5]);
        Check(Dev, x => Ops.Attention(x[0], x[1], x[2], mask), [Random(R(4), 2, 2, 2, 4), Random(R(5), 2, 5, 1, 4), Random(R(6), 2, 5, 1, 4)]);
    }

    [Fact] public void SwiGlu() => Check(Dev, x => Ops.SwiGlu(x[0], x[1]), [Random(R(), 3, 4), Random(R(2), 3, 4)]);

    [Fact]
    public void TokenLogProbs() =>
        Check(Dev, x => Ops.TokenLogProbs(x[0], Ints([1, 4, 3, 0], 4)), [Random(R(), 4, 5)]);

    [Fact]
    public void CrossEntropyWithIgnoreIndex() =>
        Check(Dev, x => Ops.CrossEntropy(x[0], Ints([1, -100, 3, 0], 4), ignoreIndex: -100), [Random(R(), 4, 5)]);

    [Fact]
    public void Concat() => Check(Dev, x => Ops.Concat([x[0], x[1]], 1), [Random(R(), 2, 3), Random(R(2), 2, 2)]);

    [Fact]
    public void Stack() => Check(Dev, x => Ops.Stack([x[0], x[1], x[0]], 0), [Random(R(), 2, 3), Random(R(2), 2, 3)]);

    [Fact]
    public void NarrowSliceSelect() =>
        Check(Dev, x => x[0].Narrow(1, 1, 2).Slice(0, -2, 3).Select(2, 1), [Random(R(), 3, 4, 2)]);

    [Fact]
    public void TransposePermuteReshape() =>
        Check(Dev, x => x[0].Transpose(0, 2).Permute(1, 0, 2).Reshape(4, -1) * x[1], [Random(R(), 2, 3, 4), Random(R(2), 4, 6)]);

    [Fact]
    public void ExpandUnsqueezeSqueeze() =>
        Check(Dev, x => x[0].Unsqueeze(0).Expand(3, 2, 4).Unsqueeze(-1).Squeeze(-1).Sum(0, keepDim: true), [Random(R(), 2, 4)]);

    [Fact]
    public void CastRoundTrip() =>
        GradCheck.Check(Dev, x => x[0].Cast(DType.F32).Cast(DType), [Random(R(), 2, 3)], DType, eps: 1e-2, atol: 1e-3, rtol: 1e-3);

    [Fact]
    public void GradientAccumulatesOverTwoUses()
    {
        // d/dx (x·x + x) = 2x + 1, with x used three times in the graph.
        Check(Dev, x => x[0] * x[0] + x[0], [Random(R(), 4)]);
    }
}

public sealed class ReferenceGradCheckTests : GradCheckTests
{
    protected override Device Dev => TestDevices.Reference;
    protected override DType DType => DType.F64;
    protected override double Eps => 1e-6;
    protected override double Atol => 1e-7;
    protected override double Rtol => 1e-5;
}

public sealed class NativeGradCheckTests : GradCheckTests
{
    protected override Device Dev => TestDevices.Native;
}

[Collection(Conformance.Conformance.SharedIlgpuDevice)]
public sealed class IlgpuCpuGradCheckTests : GradCheckTests
{
    protected override Device Dev => TestDevices.IlgpuCpu;
}
