using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class QuantizedMatMulTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    public static TheoryData<DType> Formats() => new(DType.Q8_0, DType.Q4_0);

    /// <summary>Weights quantized by the reference (so both sides hold the same bytes) on both devices.</summary>
    private (Tensor Gpu, Tensor Ref) Weights(DType dtype, int m, int k, int seed)
    {
        using var wf = Tensor.FromArray(Ref, Random(seed, (long)m * k), m, k);
        var wr = Tensor.Zeros(Ref, dtype, m, k);
        R.Quantize(wf, wr);
        return (Tensor.FromBytes(Gpu, dtype, wr.ToBytes(), m, k), wr);
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizeMatchesReferenceBytes(DType dtype)
    {
        var data = Random(11, 5 * 64, 3f);
        data[0] = 0; data[1] = 2.5f / 127 * 3; // a rounding tie after scaling
        for (int i = 64; i < 96; i++) data[i] = 0; // an all-zero block
        var x = Pair(data, 5, 64);
        var q = Zeros(dtype, 5, 64);
        G.Quantize(x.Gpu, q.Gpu);
        R.Quantize(x.Ref, q.Ref);
        Assert.Equal(q.Ref.ToBytes(), q.Gpu.ToBytes());

        var back = Zeros(5, 64);
        G.Dequantize(q.Gpu, back.Gpu);
        R.Dequantize(q.Ref, back.Ref);
        AssertClose(back, 0, 0, "dequantized");
    }

    [Theory]
    [InlineData(DType.Q8_0, 1)]
    [InlineData(DType.Q4_0, 3)]
    [InlineData(DType.Q8_0, 4)]
    [InlineData(DType.Q8_0, 9)]
    [InlineData(DType.Q4_0, 21)]
    public void QuantizedMatMulMatchesReference(DType dtype, int n)
    {
        int m = 37, k = 96;
        var w = Weights(dtype, m, k, 12);
        var x = Pair(Random(13, (long)n * k), n, k);
        var y = Zeros(n, m);
        G.QuantizedMatMul(x.Gpu, w.Gpu, y.Gpu);
        R.QuantizedMatMul(x.Ref, w.Ref, y.Ref);
        AssertClose(y, 1e-4, 1e-4, $"y (N = {n}, {(n <= GpuBackend.QuantizedGemvMaxRows ? "gemv" : "gemm")})");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void QuantizedMatMulBackwardMatchesReference(DType dtype)
    {
        int n = 7, m = 19, k = 64;
        var w = Weights(dtype, m, k, 14);
        var dy = Pair(Random(15, (long)n * m), n, m);
        var dx = Zeros(n, k);
        G.QuantizedMatMulBackward(dy.Gpu, w.Gpu, dx.Gpu);
        R.QuantizedMatMulBackward(dy.Ref, w.Ref, dx.Ref);
        AssertClose(dx, 1e-4, 1e-4, "dx");
    }

    /// <summary>A BF16 weight with the same bytes on both devices.</summary>
    private (Tensor Gpu, Tensor Ref) Bf16Weight(int m, int k, int seed)
    {
        using var wf = Tensor.FromArray(Ref, Random(seed, (long)m * k), m, k);
        var wr = Tensor.Zeros(Ref, DType.BF16, m, k);
        R.Copy(wf, wr);
        return (Tensor.FromBytes(Gpu, DType.BF16, wr.ToBytes(), m, k), wr);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(6)]
    public void Bf16WeightMatMulAndBackwardMatchReference(int n)
    {
        int m = 21, k = 45;
        var w = Bf16Weight(m, k, 16);
        var x = Pair(Random(17, (long)n * k), n, k);
        var y = Zeros(n, m);
        G.QuantizedMatMul(x.Gpu, w.Gpu, y.Gpu);
        R.QuantizedMatMul(x.Ref, w.Ref, y.Ref);
        AssertClose(y, 1e-5, 1e-5, $"y (N = {n})");

        var dy = Pair(Random(18, (long)n * m), n, m);
        var dx = Zeros(n, k);
        G.QuantizedMatMulBackward(dy.Gpu, w.Gpu, dx.Gpu);
        R.QuantizedMatMulBackward(dy.Ref, w.Ref, dx.Ref);
        AssertClose(dx, 1e-5, 1e-5, "dx");
    }
}
