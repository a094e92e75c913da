using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>The K-quant (Q4_K, Q5_K, Q6_K) weights on the GPU kernels: dequantize, the GEMV and tiled GEMM forward
/// and the backward, against the reference backend holding the same super-blocks.</summary>
public sealed class KQuantMatMulTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    public static TheoryData<DType> KTypes() => new(DType.Q4_K, DType.Q5_K, DType.Q6_K);

    /// <summary>Super-blocks encoded from random values, the same bytes on both devices.</summary>
    private (Tensor Gpu, Tensor Ref) Weights(DType dtype, int m, int k, int seed)
    {
        var bytes = new byte[dtype.ByteCount((long)m * k)];
        KQuantEncoder.QuantizeRow(dtype, Random(seed, (long)m * k), bytes);
        return (Tensor.FromBytes(Gpu, dtype, bytes, m, k), Tensor.FromBytes(Ref, dtype, bytes, m, k));
    }

    [Theory]
    [MemberData(nameof(KTypes))]
    public void DequantizeMatchesReference(DType dtype)
    {
        var w = Weights(dtype, 3, 512, 21);
        var back = Zeros(3, 512);
        G.Dequantize(w.Gpu, back.Gpu);
        R.Dequantize(w.Ref, back.Ref);
        AssertClose(back, 1e-7, 1e-6, $"{dtype} dequantized");
    }

    [Theory]
    [InlineData(DType.Q4_K, 1)] [InlineData(DType.Q5_K, 3)] [InlineData(DType.Q6_K, 4)]
    [InlineData(DType.Q4_K, 9)] [InlineData(DType.Q5_K, 21)] [InlineData(DType.Q6_K, 7)]
    public void MatMulAndBackwardMatchReference(DType dtype, int n)
    {
        int m = 19, k = 512;
        var w = Weights(dtype, m, k, 22);
        var x = Pair(Random(23, (long)n * k), n, k);
        var y = Zeros(n, m);
        G.QuantizedMatMul(x.Gpu, w.Gpu, y.Gpu);
        R.QuantizedMatMul(x.Ref, w.Ref, y.Ref);
        AssertClose(y, 1e-4, 1e-4, $"{dtype} y (N = {n})");

        var dy = Pair(Random(24, (long)n * m), n, m);
        var dx = Zeros(n, k);
        G.QuantizedMatMulBackward(dy.Gpu, w.Gpu, dx.Gpu);
        R.QuantizedMatMulBackward(dy.Ref, w.Ref, dx.Ref);
        AssertClose(dx, 1e-4, 1e-4, $"{dtype} dx (N = {n})");
    }
}
