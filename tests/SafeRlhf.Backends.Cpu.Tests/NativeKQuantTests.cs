using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Q4_K / Q5_K / Q6_K weights kept as stored: the native quantized matmul and its backward against the reference
/// backend (dequantized weight, double products) on every instruction set, at sizes that fill and leave partial panels,
/// with activations on the Q8_0 grid (the forward rounds them to int8 on AVX-512 VNNI, exactly there); its rounding on
/// any activations is held to an int8 model below.
/// The ISA cap is process-wide, hence the shared collection with the other ISA tests. Dequantize and the product on every
/// backend are in the conformance suite of SafeRlhf.Tensors.Tests.</summary>
[Collection(nameof(NativeIsaTests))]
public sealed class NativeKQuantTests
{
    public static TheoryData<DType> KTypes => new() { DType.Q4_K, DType.Q5_K, DType.Q6_K };

    /// <summary>Super-blocks of random bytes whose fp16 scales are small finite values, negative zero or subnormals.</summary>
    internal static byte[] RandomBlocks(Rng rng, DType dtype, int blocks)
    {
        int size = dtype.BlockBytes();
        var data = new byte[blocks * size];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)rng.NextUInt64();
        int[] halves = dtype == DType.Q6_K ? [208] : [0, 2];
        ushort[] odd = [0x8000, 0x0001, 0x83FF, 0x2E66, 0xA0F0, 0x1C00];
        for (int b = 0; b < blocks; b++)
            foreach (int at in halves)
            {
                ushort h = rng.NextInt(3) == 0 ? odd[rng.NextInt(odd.Length)] : (ushort)BitConverter.HalfToUInt16Bits((Half)rng.Uniform(-0.02, 0.02));
                data[b * size + at] = (byte)h;
                data[b * size + at + 1] = (byte)(h >> 8);
            }
        return data;
    }

    public static TheoryData<DType, int, int, int> Shapes()
    {
        var data = new TheoryData<DType, int, int, int>();
        foreach (var t in new[] { DType.Q4_K, DType.Q5_K, DType.Q6_K })
        {
            data.Add(t, 1, 5, 256);      // decode: one row
            data.Add(t, 3, 40, 512);     // a few rows
            data.Add(t, 9, 37, 1280);    // panels: more than 1024 columns, a partial panel
            data.Add(t, 33, 300, 256);   // panels: more than 256 weight rows
        }
        data.Add(DType.Q6_K, 0, 5, 256);
        data.Add(DType.Q4_K, 2, 0, 256);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void QuantizedMatMulAndBackwardAgainstTheReference(DType dtype, int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 131 + m * 7 + k) + (ulong)dtype);
        var x = OnTheQ8Grid(rng, n * k);  // exact under the int8 rounding of the forward
        var dy = Random(rng, n * m);
        var blocks = RandomBlocks(rng, dtype, m * k / DTypeInfo.KQuantBlock);
        foreach (var isa in new[] { NativeIsa.Scalar, NativeIsa.Avx2, NativeIsa.Avx512 })
        {
            try
            {
                NativeBackend.SetMaxIsa(isa);
                using var wq = Tensor.FromBytes(NativeDevice, dtype, blocks, m, k);
                using var wr = Tensor.FromBytes(ReferenceDevice, dtype, blocks, m, k);
                using var xt = On(NativeDevice, x, n, k);
                using var xr = On(ReferenceDevice, x, n, k);
                using var y = Zeros(NativeDevice, n, m);
                using var yr = Zeros(ReferenceDevice, n, m);
                NativeDevice.Backend.QuantizedMatMul(xt, wq, y);
                ReferenceDevice.Backend.QuantizedMatMul(xr, wr, yr);
                double scale = Scale(yr);
                Close(yr, y, 1e-6 * scale * Math.Sqrt(k), 1e-5, $"{dtype} y on {isa}");

                using var dyt = On(NativeDevice, dy, n, m);
                using var dyr = On(ReferenceDevice, dy, n, m);
                using var dx = Zeros(NativeDevice, n, k);
                using var dxr = Zeros(ReferenceDevice, n, k);
                NativeDevice.Backend.QuantizedMatMulBackward(dyt, wq, dx);
                ReferenceDevice.Backend.QuantizedMatMulBackward(dyr, wr, dxr);
                Close(dxr, dx, 1e-6 * Scale(dxr) * Math.Sqrt(m + 1), 1e-5, $"{dtype} dx on {isa}");
            }
            finally
            {
                NativeBackend.SetMaxIsa(NativeIsa.Avx512);
            }
        }
    }

    /// <summary>Every K-quant forward on AVX-512 VNNI (the row kernel below 32 rows, the packed register tile from 32, with
    /// partial tiles and a partial group of 16 weight rows): the activations are rounded to int8 per 32-block as the
    /// Q8_0 / Q4_0 product rounds them, and the result is Σ_b d_x,b · Σ_j x_q,j · w_j with w the exactly dequantized
    /// weights (the reference's decoder), in double; the fp32 product of unrounded activations lies far outside this
    /// tolerance.</summary>
    [Theory]
    [InlineData(DType.Q4_K, 1, 16, 256)] [InlineData(DType.Q4_K, 3, 9, 512)] [InlineData(DType.Q4_K, 7, 33, 768)]
    [InlineData(DType.Q4_K, 32, 16, 256)] [InlineData(DType.Q4_K, 43, 37, 512)]
    [InlineData(DType.Q5_K, 1, 16, 256)] [InlineData(DType.Q5_K, 5, 9, 512)] [InlineData(DType.Q5_K, 19, 33, 768)] [InlineData(DType.Q5_K, 35, 33, 768)]
    [InlineData(DType.Q6_K, 1, 16, 256)] [InlineData(DType.Q6_K, 3, 9, 512)] [InlineData(DType.Q6_K, 7, 33, 768)]
    [InlineData(DType.Q6_K, 32, 16, 256)] [InlineData(DType.Q6_K, 45, 21, 512)]
    public void ForwardIsTheInt8Product(DType dtype, int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 17 + m * 5 + k) + (ulong)dtype);
        var x = NativeQuantTests.Activations(rng, n, k, ties: true);
        var blocks = RandomBlocks(rng, dtype, m * k / DTypeInfo.KQuantBlock);
        using var wq = Tensor.FromBytes(NativeDevice, dtype, blocks, m, k);
        using var xt = On(NativeDevice, x, n, k);
        using var y = Zeros(NativeDevice, n, m);
        NativeDevice.Backend.QuantizedMatMul(xt, wq, y);
        NativeQuantTests.AssertInt8Model(Int8Model(dtype, blocks, x, n, m, k), y.ToFloatArray(), m, k);
    }

    /// <summary>Σ_b d_x,b · Σ_j x_q,j · w_j in double, x rounded to int8 per 32-block as the Q8_0 / Q4_0 product rounds
    /// it, w the file-layout K-quant blocks decoded by the reference backend.</summary>
    internal static float[] Int8Model(DType dtype, byte[] blocks, float[] x, int n, int m, int k)
    {
        using var wr = Tensor.FromBytes(ReferenceDevice, dtype, blocks, m, k);
        using var dense = Ops.Dequantize(wr);
        var w = dense.ToFloatArray();
        var expected = new float[n * m];
        for (int i = 0; i < n; i++)
        {
            var (xq, xd) = NativeQuantTests.Int8Blocks(x.AsSpan(i * k, k));
            for (int j = 0; j < m; j++)
            {
                double sum = 0;
                for (int b = 0; b < k / 32; b++)
                {
                    double dot = 0;
                    for (int t = 0; t < 32; t++) dot += (double)xq[b * 32 + t] * w[j * k + b * 32 + t];
                    sum += xd[b] * dot;
                }
                expected[i * m + j] = (float)sum;
            }
        }
        return expected;
    }

    private static double Scale(Tensor t) => t.Numel == 0 ? 1 : Math.Max(1e-30, t.ToFloatArray().Max(v => Math.Abs((double)v)));

    [Fact]
    public void KQuantSizesAndQuantizeAreRejectedLoudly()
    {
        using var w = Tensor.FromBytes(NativeDevice, DType.Q4_K, new byte[2 * DTypeInfo.Q4_KBlockBytes], 2, 256);
        using var x = Zeros(NativeDevice, 1, 256);
        Assert.Throws<TensorDTypeException>(() => Ops.Quantize(x, DType.Q5_K));
        Assert.ThrowsAny<Exception>(() => Tensor.FromBytes(NativeDevice, DType.Q6_K, new byte[210], 1, 128));
        using var bad = Zeros(NativeDevice, 1, 255);
        Assert.Throws<TensorShapeException>(() => Ops.QuantizedMatMul(bad, w));
    }
}
