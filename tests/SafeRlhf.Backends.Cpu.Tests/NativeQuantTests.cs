using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Q8_0 / Q4_0: block bytes against a scalar quantizer written here from the ggml block definitions,
/// round trips, and the quantized matmul and its backward against fp32 products (normalised MSE).</summary>
public sealed class NativeQuantTests
{
    /// <summary>ggml block_q8_0: fp16 d = amax/127, then 32 int8 q = round(x/d) (half away from zero).</summary>
    private static byte[] QuantizeQ8(float[] x)
    {
        var bytes = new byte[x.Length / 32 * 34];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            float d = amax / 127f;
            float inv = d == 0 ? 0 : 1f / d;
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 34, 2), (Half)d);
            for (int j = 0; j < 32; j++)
                bytes[b * 34 + 2 + j] = unchecked((byte)(sbyte)Math.Round(x[b * 32 + j] * inv, MidpointRounding.AwayFromZero));
        }
        return bytes;
    }

    /// <summary>ggml block_q4_0: fp16 d = m/−8 (m the signed value of largest magnitude, first one on ties),
    /// q = min(15, trunc(x/d + 8.5)); byte j holds element j (low nibble) and element j+16 (high nibble).</summary>
    private static byte[] QuantizeQ4(float[] x)
    {
        var bytes = new byte[x.Length / 32 * 18];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0, m = 0;
            for (int j = 0; j < 32; j++)
            {
                float v = x[b * 32 + j];
                if (Math.Abs(v) > amax) { amax = Math.Abs(v); m = v; }
            }
            float d = m / -8f;
            float inv = d == 0 ? 0 : 1f / d;
            BitConverter.TryWriteBytes(bytes.AsSpan(b * 18, 2), (Half)d);
            for (int j = 0; j < 16; j++)
            {
                int lo = Math.Min(15, (int)(x[b * 32 + j] * inv + 8.5f));
                int hi = Math.Min(15, (int)(x[b * 32 + j + 16] * inv + 8.5f));
                bytes[b * 18 + 2 + j] = (byte)(lo | (hi << 4));
            }
        }
        return bytes;
    }

    private static float[] Values(Rng rng, int n)
    {
        var x = Random(rng, n, -3, 3);
        for (int i = 0; i < n; i += 97) x[i] = 0;              // zeros
        if (n >= 64) for (int j = 32; j < 64; j++) x[j] = 0;   // an all-zero block (d = 0)
        if (n >= 96) x[70] = -x[70] * 40;                     // a dominant negative value
        if (n >= 128) for (int j = 96; j < 128; j++) x[j] = (j - 112) * 0.5f;  // exact halves
        return x;
    }

    [Theory]
    [InlineData(DType.Q8_0, 32)] [InlineData(DType.Q8_0, 32 * 37)] [InlineData(DType.Q4_0, 32)] [InlineData(DType.Q4_0, 32 * 37)]
    [InlineData(DType.Q8_0, 0)]
    public void QuantizeMatchesScalarBlockDefinition(DType dtype, int n)
    {
        var x = Values(new Rng((ulong)n + 1), n);
        var expected = dtype == DType.Q8_0 ? QuantizeQ8(x) : QuantizeQ4(x);
        using var xt = On(NativeDevice, x, 1, n);
        using var q = Tensor.Zeros(NativeDevice, dtype, 1, n);
        NativeDevice.Backend.Quantize(xt, q);
        Assert.Equal(expected, q.ToBytes());

        // Dequantize: the reference decodes the same bytes identically.
        using var back = Zeros(NativeDevice, 1, n);
        NativeDevice.Backend.Dequantize(q, back);
        using var qr = Tensor.FromBytes(ReferenceDevice, dtype, expected, 1, n);
        using var backRef = Zeros(ReferenceDevice, 1, n);
        ReferenceDevice.Backend.Dequantize(qr, backRef);
        Assert.Equal(backRef.ToFloatArray(), back.ToFloatArray());
        // Round-trip error, leaving out block 2 whose 40× outlier coarsens its scale on purpose.
        var kept = Enumerable.Range(0, n).Where(i => i / 32 != 2).ToArray();
        var backValues = back.ToFloatArray();
        if (n > 0)
            Assert.True(NormalisedMse(kept.Select(i => backValues[i]).ToArray(), kept.Select(i => x[i]).ToArray()) < (dtype == DType.Q8_0 ? 1e-4 : 1e-2));
    }

    /// <summary>The 32 integer weights and the scale of block <paramref name="b"/> of a quantized row.</summary>
    private static (int[] Q, double D) WeightBlock(DType dtype, byte[] row, int b)
    {
        int size = dtype == DType.Q8_0 ? 34 : 18, at = b * size;
        double d = (double)BitConverter.ToHalf(row, at);
        var q = new int[32];
        for (int j = 0; j < 32; j++)
            q[j] = dtype == DType.Q8_0 ? (sbyte)row[at + 2 + j]
                : j < 16 ? (row[at + 2 + j] & 0x0F) - 8 : (row[at + 2 + j - 16] >> 4) - 8;
        return (q, d);
    }

    [Theory]
    [InlineData(DType.Q8_0, 7, 13, 96)] [InlineData(DType.Q4_0, 7, 13, 96)] [InlineData(DType.Q8_0, 4, 8, 32)]
    [InlineData(DType.Q4_0, 9, 6, 160)] [InlineData(DType.Q8_0, 5, 37, 512)] [InlineData(DType.Q4_0, 1, 5, 64)]
    public void QuantizedMatMulIsTheExactInt8ProductUpToFloatSummation(DType dtype, int n, int m, int k)
    {
        // The independent model of the kernel: activations rounded to int8 per 32-block as ggml's Q8_0 does
        // (d = amax/127, q = round half away from zero of x/d), exact integer block dot products, then the scaled
        // block sums added in double. Only the kernel's float summation order may differ.
        var rng = new Rng((ulong)(n * 17 + m * 3 + k));
        var x = Random(rng, n * k, -2, 2);
        var w = Random(rng, m * k);
        byte[] blocks = dtype == DType.Q8_0 ? QuantizeQ8(w) : QuantizeQ4(w);
        int rowBytes = k / 32 * (dtype == DType.Q8_0 ? 34 : 18);
        var expected = new float[n * m];
        for (int i = 0; i < n; i++)
        {
            var xq = new int[k];
            var xd = new float[k / 32];
            for (int b = 0; b < k / 32; b++)
            {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[i * k + b * 32 + j]));
                xd[b] = amax / 127f;
                float id = xd[b] != 0 ? 1f / xd[b] : 0f;
                for (int j = 0; j < 32; j++) xq[b * 32 + j] = (int)MathF.Round(x[i * k + b * 32 + j] * id, MidpointRounding.AwayFromZero);
            }
            for (int c = 0; c < m; c++)
            {
                var row = blocks.AsSpan(c * rowBytes, rowBytes).ToArray();
                double sum = 0;
                for (int b = 0; b < k / 32; b++)
                {
                    var (q, d) = WeightBlock(dtype, row, b);
                    long dot = 0;
                    for (int j = 0; j < 32; j++) dot += (long)q[j] * xq[b * 32 + j];
                    sum += dot * (d * xd[b]);
                }
                expected[i * m + c] = (float)sum;
            }
        }
        using var wq = Tensor.FromBytes(NativeDevice, dtype, blocks, m, k);
        using var xt = On(NativeDevice, x, n, k);
        using var y = Zeros(NativeDevice, n, m);
        NativeDevice.Backend.QuantizedMatMul(xt, wq, y);
        var actual = y.ToFloatArray();
        double scale = expected.Max(v => Math.Abs(v));
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 2e-6 * scale * Math.Sqrt(k / 32.0),
                $"y[{i / m}, {i % m}] = {actual[i]}, the int8 model gives {expected[i]}");
    }

    public static TheoryData<DType, int, int, int> MatMulShapes() => new()
    {
        { DType.Q8_0, 1, 1, 32 }, { DType.Q4_0, 1, 7, 64 }, { DType.Q8_0, 3, 33, 96 }, { DType.Q4_0, 5, 40, 320 },
        { DType.Q8_0, 9, 70, 512 }, { DType.Q4_0, 1, 300, 4096 }, { DType.Q8_0, 2, 0, 64 }, { DType.Q4_0, 0, 5, 64 },
    };

    [Theory]
    [MemberData(nameof(MatMulShapes))]
    public void QuantizedMatMulAndBackwardAgainstFp32(DType dtype, int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 131 + m * 7 + k));
        var x = Random(rng, n * k);
        var w = Random(rng, m * k);
        var dy = Random(rng, n * m);
        using var wq = Tensor.FromBytes(NativeDevice, dtype, dtype == DType.Q8_0 ? QuantizeQ8(w) : QuantizeQ4(w), m, k);

        // y = x·wᵀ against the reference's exact product with the dequantized weight: only the int8
        // activation rounding differs.
        using var xt = On(NativeDevice, x, n, k);
        using var y = Zeros(NativeDevice, n, m);
        NativeDevice.Backend.QuantizedMatMul(xt, wq, y);
        using var xr = On(ReferenceDevice, x, n, k);
        using var wr = Tensor.FromBytes(ReferenceDevice, dtype, wq.ToBytes(), m, k);
        using var yr = Zeros(ReferenceDevice, n, m);
        ReferenceDevice.Backend.QuantizedMatMul(xr, wr, yr);
        if (n * m > 0) Assert.True(NormalisedMse(y.ToFloatArray(), yr.ToFloatArray()) < 1e-4, "y vs dequantized-weight product");

        // against the fp32 weight the weight quantization error shows as well
        var fp32 = new float[n * m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double s = 0;
                for (int l = 0; l < k; l++) s += (double)x[i * k + l] * w[j * k + l];
                fp32[i * m + j] = (float)s;
            }
        if (n * m > 0) Assert.True(NormalisedMse(y.ToFloatArray(), fp32) < (dtype == DType.Q8_0 ? 1e-3 : 3e-2), "y vs fp32 product");

        // dx = dy·w is exact in the dequantized weight (fp32 GEMM)
        using var dyt = On(NativeDevice, dy, n, m);
        using var dx = Zeros(NativeDevice, n, k);
        NativeDevice.Backend.QuantizedMatMulBackward(dyt, wq, dx);
        using var dyr = On(ReferenceDevice, dy, n, m);
        using var dxr = Zeros(ReferenceDevice, n, k);
        ReferenceDevice.Backend.QuantizedMatMulBackward(dyr, wr, dxr);
        Close(dxr, dx, 1e-5 * Math.Sqrt(m + 1), 1e-5, "dx");
    }
}
