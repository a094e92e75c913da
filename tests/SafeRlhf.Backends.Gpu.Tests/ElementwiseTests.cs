using SafeRlhf.Kernels;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class ElementwiseTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void OpCodesFollowTheTensorEnums()
    {
        string[] unary = ["Neg", "Exp", "Log", "Sqrt", "Rsqrt", "Silu", "Sigmoid", "LogSigmoid", "Square", "Abs", "Scale", "AddScalar", "Clamp"];
        Assert.Equal(unary, Enum.GetNames<UnaryOp>());
        foreach (string name in unary)
            Assert.Equal((int)Enum.Parse<UnaryOp>(name), (int)typeof(UnaryCode).GetField(name)!.GetValue(null)!);
        foreach (string name in Enum.GetNames<BinaryOp>())
            Assert.Equal((int)Enum.Parse<BinaryOp>(name), (int)typeof(BinaryCode).GetField(name)!.GetValue(null)!);
        Assert.Equal((int)DType.F32, DTypeCode.F32);
        Assert.Equal((int)DType.F64, DTypeCode.F64);
        Assert.Equal((int)DType.BF16, DTypeCode.BF16);
        Assert.Equal((int)DType.F16, DTypeCode.F16);
        Assert.Equal((int)DType.I32, DTypeCode.I32);
    }

    [Theory]
    [InlineData(DType.F32, DType.F64)]
    [InlineData(DType.F64, DType.F32)]
    [InlineData(DType.F32, DType.BF16)]
    [InlineData(DType.BF16, DType.F32)]
    [InlineData(DType.F32, DType.F16)]
    [InlineData(DType.F16, DType.F64)]
    [InlineData(DType.F32, DType.I32)]
    [InlineData(DType.I32, DType.F32)]
    public void CopyConvertsDTypesThroughStridedViews(DType from, DType to)
    {
        // values with exact halves and large magnitudes exercise rounding (ties to even) in every target type
        var data = new float[4 * 6];
        var rng = new System.Random(7);
        for (int i = 0; i < data.Length; i++) data[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-20, 18)));
        data[0] = 2.5f; data[1] = -3.5f; data[2] = 65519f; data[3] = 1e-7f; data[4] = 70000f; data[5] = 1.00390625f;
        var src32 = Pair(data, 4, 6);
        var src = Zeros(from, 4, 6);
        G.Copy(src32.Gpu, src.Gpu);
        R.Copy(src32.Ref, src.Ref);
        AssertClose(src, 0, 0, $"{from} source");
        // transposed source view [6, 4] into a contiguous destination
        var dst = Zeros(to, 6, 4);
        G.Copy(src.Gpu.Transpose(0, 1), dst.Gpu);
        R.Copy(src.Ref.Transpose(0, 1), dst.Ref);
        AssertClose(dst, 0, 0, $"{from}→{to}");
    }

    [Fact]
    public void CopyWritesIntoAStridedDestination()
    {
        var src = Pair(Random(8, 15), 3, 5);
        var dst = Zeros(5, 2, 3);
        // destination view [3, 5] over a [5, 2, 3] buffer: select column block 1, transpose
        G.Copy(src.Gpu, dst.Gpu.Select(1, 1).Transpose(0, 1));
        R.Copy(src.Ref, dst.Ref.Select(1, 1).Transpose(0, 1));
        AssertClose(dst, 0, 0, "strided destination");
    }

    [Fact]
    public void FillSetsEveryElement()
    {
        var y = Zeros(DType.F16, 3, 7);
        G.Fill(y.Gpu, 1.5);
        R.Fill(y.Ref, 1.5);
        AssertClose(y, 0, 0, "fill");
    }

    [Fact]
    public void ReduceSumOfATransposedView()
    {
        var x = Pair(Random(10, 24), 4, 6);
        var y = Zeros(6, 1);
        G.ReduceSum(x.Gpu.Transpose(0, 1), y.Gpu);
        R.ReduceSum(x.Ref.Transpose(0, 1), y.Ref);
        AssertClose(y, 1e-5, 1e-5, "sumᵀ");
    }
}

public sealed class HalfPrecisionElementwiseTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void UnaryAndBinaryReadAndWriteHalfTypesInPlace(DType dtype)
    {
        var src = Pair(Random(20, 2 * 9, 3f), 2, 9);
        var x = Zeros(dtype, 2, 9);
        G.Copy(src.Gpu, x.Gpu);
        R.Copy(src.Ref, x.Ref);
        var y = Zeros(dtype, 2, 9);
        G.Unary(UnaryOp.Silu, x.Gpu, y.Gpu, 0, 0);
        R.Unary(UnaryOp.Silu, x.Ref, y.Ref, 0, 0);
        // one rounding step of the storage type apart at most
        double ulp = dtype == DType.F16 ? 1.0 / 1024 : 1.0 / 128;
        AssertClose(y, 1e-6, ulp, $"silu {dtype}");
        var z = Zeros(dtype, 2, 9);
        G.Binary(BinaryOp.Mul, x.Gpu, y.Gpu, z.Gpu);
        R.Binary(BinaryOp.Mul, x.Ref, y.Ref, z.Ref);
        AssertClose(z, 1e-6, ulp, $"mul {dtype}");
    }

    [Fact]
    public void ForeignStorageIsRejected()
    {
        var x = Pair(Random(21, 4), 4);
        var y = Zeros(4);
        Assert.Throws<ArgumentException>(() => G.Unary(UnaryOp.Neg, x.Ref, y.Gpu, 0, 0));
        Assert.Equal(GpuBackend.IsCudaAvailable ? "cuda" : "ilgpu-cpu", G.Name);
    }
}
