using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>K-quant weights with their rows interleaved by 16 (Q4_Kx16, Q5_Kx16, Q6_Kx16): the native layout equals the C#
/// definition byte for byte, every product through it is the int8 model's (from 64 rows the file layout's bits), and
/// dequantize and the backward give the file layout's values.</summary>
[Collection(nameof(NativeIsaTests))]
public sealed class NativeInterleavedKQuantTests
{
    [Theory]
    [InlineData(DType.Q4_K)] [InlineData(DType.Q5_K)] [InlineData(DType.Q6_K)]
    public void NativeLayoutIsTheDefinitionAndInverts(DType dtype)
    {
        int m = 48, k = 512, supers = k / 256, size = dtype.BlockBytes();
        var file = NativeKQuantTests.RandomBlocks(new Rng(3), dtype, m * supers);
        var bytes = NativeInterleavedTests.AssertLayoutIsTheDefinition(dtype, file, m, k);

        // A spot check read from the layout's description: row 17 (group 1, lane 1), super-block 1, word 3 (bytes 12–15).
        int row = 17, s = 1, t = 3;
        int fileAt = (row * supers + s) * size + 4 * t;
        int at = 16 * supers * size + s * 16 * size + 64 * t + 4 * (row % 16);
        Assert.Equal(file[fileAt..(fileAt + 4)], bytes[at..(at + 4)]);
        if (dtype == DType.Q6_K)  // its fp16 d, the two bytes after the 52 words
        {
            int dAt = (row * supers + s) * size + 208, tail = 16 * supers * size + s * 16 * size + 64 * 52 + 2 * (row % 16);
            Assert.Equal(file[dAt..(dAt + 2)], bytes[tail..(tail + 2)]);
        }
    }

    /// <summary>Decode (1 row), small batches, 8-row tiles with a remainder, and from 64 rows the packed tiles that the
    /// file layout's product runs too (then the same bits).</summary>
    [Theory]
    [InlineData(DType.Q4_K, 1, 16, 256)] [InlineData(DType.Q5_K, 1, 32, 512)] [InlineData(DType.Q4_K, 3, 48, 512)]
    [InlineData(DType.Q5_K, 8, 16, 768)] [InlineData(DType.Q4_K, 21, 32, 256)] [InlineData(DType.Q5_K, 13, 16, 256)]
    [InlineData(DType.Q4_K, 70, 32, 512)] [InlineData(DType.Q5_K, 64, 16, 256)]
    [InlineData(DType.Q6_K, 1, 16, 256)] [InlineData(DType.Q6_K, 2, 32, 768)] [InlineData(DType.Q6_K, 11, 48, 512)]
    [InlineData(DType.Q6_K, 66, 16, 256)]
    public void ProductIsTheInt8Model(DType dtype, int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 31 + m + k) + (ulong)dtype);
        var x = NativeQuantTests.Activations(rng, n, k, ties: true);
        var file = NativeKQuantTests.RandomBlocks(rng, dtype, m * k / 256);
        NativeInterleavedTests.AssertInterleavedProduct(dtype, file, x, n, m, k, NativeKQuantTests.Int8Model(dtype, file, x, n, m, k), sameBitsFrom: 64);
    }

    /// <summary>Without AVX-512 VNNI each group goes back to the file layout: the file layout's fp32 product.</summary>
    [Theory]
    [InlineData(NativeIsa.Scalar)] [InlineData(NativeIsa.Avx2)]
    public void ProductWithoutVnniIsTheFileLayouts(NativeIsa isa)
    {
        var rng = new Rng((ulong)isa + 9);
        foreach (var (dtype, n) in new[] { (DType.Q4_K, 3), (DType.Q5_K, 9), (DType.Q6_K, 2) })
        {
            int m = 32, k = 512;
            var x = Random(rng, n * k);
            var file = NativeKQuantTests.RandomBlocks(rng, dtype, m * k / 256);
            using var w = Tensor.FromBytes(NativeDevice, dtype, file, m, k);
            using var packed = Ops.InterleaveRows(w);
            using var xt = On(NativeDevice, x, n, k);
            using var y = Zeros(NativeDevice, n, m);
            using var yFile = Zeros(NativeDevice, n, m);
            try
            {
                NativeBackend.SetMaxIsa(isa);
                NativeDevice.Backend.QuantizedMatMul(xt, packed, y);
                NativeDevice.Backend.QuantizedMatMul(xt, w, yFile);
            }
            finally
            {
                NativeBackend.SetMaxIsa(NativeIsa.Avx512);
            }
            var expected = yFile.ToFloatArray();
            double scale = expected.Max(v => Math.Abs((double)v));
            Close(yFile, y, 1e-6 * scale * Math.Sqrt(k), 1e-5, $"{dtype} on {isa}");
        }
    }

    /// <summary>Dequantize and the backward decode the interleaved rows to exactly the file layout's values, on the native
    /// and on the reference backend (whose product then equals its file-layout product bit for bit).</summary>
    [Theory]
    [InlineData(DType.Q4_K)] [InlineData(DType.Q5_K)] [InlineData(DType.Q6_K)]
    public void DequantizeBackwardAndReferenceMatchTheFileLayout(DType dtype)
    {
        int n = 5, m = 32, k = 1280;  // the backward's panels: 1024 columns, then 256
        var rng = new Rng(13);
        var file = NativeKQuantTests.RandomBlocks(rng, dtype, m * k / 256);
        NativeInterleavedTests.AssertMatchesTheFileLayout(dtype, file, rng, n, m, k);
    }

    [Fact]
    public void RaggedRowsAndQuantizeAreRefusedNamingThem()
    {
        var q4 = NativeKQuantTests.RandomBlocks(new Rng(6), DType.Q4_K, 24);
        using var ragged = Tensor.FromBytes(NativeDevice, DType.Q4_K, q4, 24, 256);
        Assert.Contains("multiple of 16", Assert.Throws<TensorShapeException>(() => Ops.InterleaveRows(ragged)).Message);
        using var dense = Zeros(NativeDevice, 16, 256);
        Assert.Throws<TensorDTypeException>(() => Ops.Quantize(dense, DType.Q6_Kx16));
        Assert.Contains("F32", Assert.Throws<TensorDTypeException>(() => Ops.InterleaveRows(dense)).Message);
    }
}
