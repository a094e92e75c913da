using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Q8_0/Q4_0 weights with their rows interleaved by 16 (Q8_0x16, Q4_0x16): the native layout equals the C#
/// definition byte for byte, and every product through it is the int8 model's, equal to the file layout's.</summary>
[Collection(nameof(NativeIsaTests))]
public sealed class NativeInterleavedTests
{
    private static byte[] Blocks(DType dtype, float[] w) => dtype == DType.Q8_0 ? GgmlQuantizers.QuantizeQ8(w) : GgmlQuantizers.QuantizeQ4(w);

    [Theory]
    [InlineData(DType.Q8_0)] [InlineData(DType.Q4_0)]
    public void NativeLayoutIsTheDefinitionAndInverts(DType dtype)
    {
        int m = 48, k = 96, blocks = k / 32;
        var file = Blocks(dtype, Random(new Rng(3), m * k));
        var bytes = AssertLayoutIsTheDefinition(dtype, file, m, k);

        // Spot checks read from the layout's description: row 17 (group 1, lane 1), block 2.
        int size = dtype.BlockBytes(), valueBytes = size - 2, group = 16 * blocks * size, row = 17, b = 2, r = row % 16;
        int fileBlock = (row * blocks + b) * size;
        int scaleAt = group + blocks * 16 * valueBytes + 2 * (b * 16 + r);
        Assert.Equal(file[fileBlock..(fileBlock + 2)], bytes[scaleAt..(scaleAt + 2)]);
        int chunk1 = group + b * 16 * valueBytes + 64 + 4 * r;  // chunk 1: value bytes 4 .. 7
        for (int t = 0; t < 4; t++)
            Assert.Equal((byte)(file[fileBlock + 2 + 4 + t] ^ (dtype == DType.Q8_0 ? 0x80 : 0)), bytes[chunk1 + t]);
    }

    /// <summary>The native backend's InterleaveRows of file-layout blocks [m, k] equals the C# definition byte for byte,
    /// and the definition's inverse gives the file back; returns the interleaved bytes.</summary>
    internal static byte[] AssertLayoutIsTheDefinition(DType dtype, byte[] file, int m, int k)
    {
        using var w = Tensor.FromBytes(NativeDevice, dtype, file, m, k);
        using var packed = Ops.InterleaveRows(w);
        Assert.Equal(dtype.Interleaved(), packed.DType);
        var bytes = packed.ToBytes();
        var expected = new byte[file.Length];
        QuantBlocks.InterleaveRows(dtype.Interleaved(), file, expected, m, k);
        Assert.Equal(expected, bytes);
        var back = new byte[file.Length];
        QuantBlocks.DeinterleaveRows(dtype.Interleaved(), bytes, back, m, k);
        Assert.Equal(file, back);
        return bytes;
    }

    /// <summary>Decode (1 row), the small-batch tiles, the 8-row tiles with a remainder and the prefill sizes: the int8
    /// model, and from 32 rows the same bits as the file layout (one kernel reads both).</summary>
    [Theory]
    [InlineData(DType.Q4_0, 1, 32, 96, false)] [InlineData(DType.Q8_0, 1, 16, 128, true)] [InlineData(DType.Q4_0, 3, 48, 160, true)]
    [InlineData(DType.Q8_0, 9, 32, 96, false)] [InlineData(DType.Q4_0, 17, 16, 64, false)] [InlineData(DType.Q8_0, 33, 48, 96, true)]
    [InlineData(DType.Q4_0, 40, 32, 128, true)]
    public void ProductIsTheInt8ModelAndTheFileLayoutsBits(DType dtype, int n, int m, int k, bool ties)
    {
        var rng = new Rng((ulong)(n * 31 + m + k));
        var x = NativeQuantTests.Activations(rng, n, k, ties);
        var file = Blocks(dtype, Random(rng, m * k));
        AssertInterleavedProduct(dtype, file, x, n, m, k, NativeQuantTests.Int8Model(dtype, x, file, n, m, k), sameBitsFrom: 32);
    }

    /// <summary>The native product x [n, k] · wᵀ through the interleaved layout of the file-layout blocks: the int8
    /// model's <paramref name="expected"/>, and from <paramref name="sameBitsFrom"/> rows the file layout's bits.</summary>
    internal static void AssertInterleavedProduct(DType dtype, byte[] file, float[] x, int n, int m, int k, float[] expected, int sameBitsFrom)
    {
        using var w = Tensor.FromBytes(NativeDevice, dtype, file, m, k);
        using var packed = Ops.InterleaveRows(w);
        using var xt = On(NativeDevice, x, n, k);
        using var y = Zeros(NativeDevice, n, m);
        NativeDevice.Backend.QuantizedMatMul(xt, packed, y);
        var actual = y.ToFloatArray();
        NativeQuantTests.AssertInt8Model(expected, actual, m, k);
        if (n >= sameBitsFrom)
        {
            using var yFile = Zeros(NativeDevice, n, m);
            NativeDevice.Backend.QuantizedMatMul(xt, w, yFile);
            Assert.Equal(yFile.ToFloatArray(), actual);
        }
    }

    /// <summary>Without AVX-512 VNNI the interleaved product runs the scalar code, still the int8 model.</summary>
    [Theory]
    [InlineData(NativeIsa.Scalar)] [InlineData(NativeIsa.Avx2)]
    public void ProductWithoutVnniIsTheInt8Model(NativeIsa isa)
    {
        var rng = new Rng((ulong)isa + 7);
        int n = 5, m = 32, k = 96;
        var x = NativeQuantTests.Activations(rng, n, k, ties: true);
        foreach (var dtype in new[] { DType.Q8_0, DType.Q4_0 })
        {
            var file = Blocks(dtype, Random(rng, m * k));
            using var w = Tensor.FromBytes(NativeDevice, dtype, file, m, k);
            using var packed = Ops.InterleaveRows(w);
            using var xt = On(NativeDevice, x, n, k);
            using var y = Zeros(NativeDevice, n, m);
            try
            {
                NativeBackend.SetMaxIsa(isa);
                NativeDevice.Backend.QuantizedMatMul(xt, packed, y);
            }
            finally
            {
                NativeBackend.SetMaxIsa(NativeIsa.Avx512);
            }
            NativeQuantTests.AssertInt8Model(NativeQuantTests.Int8Model(dtype, x, file, n, m, k), y.ToFloatArray(), m, k);
        }
    }

    /// <summary>Dequantize and the backward decode the interleaved rows to exactly the file layout's values, on the native
    /// and on the reference backend (whose product then equals its file-layout product bit for bit).</summary>
    [Theory]
    [InlineData(DType.Q8_0)] [InlineData(DType.Q4_0)]
    public void DequantizeBackwardAndReferenceMatchTheFileLayout(DType dtype)
    {
        int n = 6, m = 32, k = 64;
        var rng = new Rng(11);
        AssertMatchesTheFileLayout(dtype, Blocks(dtype, Random(rng, m * k)), rng, n, m, k);
    }

    /// <summary>On the native and the reference backend: Dequantize of the interleaved weights equals the file layout's,
    /// so does the backward, and the reference's product (exact decode, double sums) too, bit for bit.</summary>
    internal static void AssertMatchesTheFileLayout(DType dtype, byte[] file, Rng rng, int n, int m, int k)
    {
        var dy = Random(rng, n * m);
        var x = Random(rng, n * k);
        foreach (var dev in new[] { NativeDevice, ReferenceDevice })
        {
            using var w = Tensor.FromBytes(dev, dtype, file, m, k);
            using var packed = Ops.InterleaveRows(w);
            using var dense = Ops.Dequantize(w);
            using var densePacked = Ops.Dequantize(packed);
            Assert.Equal(dense.ToFloatArray(), densePacked.ToFloatArray());

            Assert.Equal(Product(dev, w, dy, m, k, backward: true), Product(dev, packed, dy, m, k, backward: true));
            if (dev == ReferenceDevice)
                Assert.Equal(Product(dev, w, x, k, m, backward: false), Product(dev, packed, x, k, m, backward: false));
        }

        // input [n, inCols] → QuantizedMatMul (y = x·wᵀ) or its backward (dx = dy·w), [n, outCols]
        static float[] Product(Device dev, Tensor weight, float[] input, int inCols, int outCols, bool backward)
        {
            int rows = input.Length / inCols;
            using var a = On(dev, input, rows, inCols);
            using var result = Zeros(dev, rows, outCols);
            if (backward) dev.Backend.QuantizedMatMulBackward(a, weight, result);
            else dev.Backend.QuantizedMatMul(a, weight, result);
            return result.ToFloatArray();
        }
    }

    [Fact]
    public void BadInputIsRefusedNamingIt()
    {
        var file = Blocks(DType.Q4_0, Random(new Rng(5), 24 * 64));
        using var ragged = Tensor.FromBytes(NativeDevice, DType.Q4_0, file, 24, 64);
        var e = Assert.Throws<TensorShapeException>(() => Ops.InterleaveRows(ragged));
        Assert.Contains("multiple of 16", e.Message);
        using var dense = Zeros(NativeDevice, 16, 64);
        Assert.Throws<TensorDTypeException>(() => Ops.InterleaveRows(dense));
        Assert.Throws<TensorDTypeException>(() => Ops.Quantize(dense, DType.Q4_0x16));
        var meta = new Device(new SafeRlhf.Tensors.Meta.MetaBackend());
        using var onMeta = Tensor.Zeros(meta, DType.Q4_0, 16, 64);
        var ns = Assert.Throws<NotSupportedException>(() => Ops.InterleaveRows(onMeta));
        Assert.Contains("row-interleaved", ns.Message);
    }
}
