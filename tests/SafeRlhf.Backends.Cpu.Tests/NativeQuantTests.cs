using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The native Q8_0 / Q4_0 product rounds the activations to Q8_0 blocks as ggml's CPU path does: against an
/// independent int8 model of that product. (Quantize, Dequantize and the product's agreement with the exact one on
/// activations Q8_0 holds exactly are in the conformance suite of SafeRlhf.Tensors.Tests.)</summary>
public sealed class NativeQuantTests
{
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

    /// <summary>With <paramref name="ties"/>, every other block of each activation row has max |x| = 127 (so d = 1) and
    /// values at exact halves, where rounding half away from zero and half to even differ: on every row, in each
    /// path (one row, the register tile below 32 rows, the column-lane GEMM from 32 rows; edges of both).</summary>
    [Theory]
    [InlineData(DType.Q8_0, 7, 13, 96, false)] [InlineData(DType.Q4_0, 7, 13, 96, false)] [InlineData(DType.Q8_0, 4, 8, 32, false)]
    [InlineData(DType.Q4_0, 9, 6, 160, false)] [InlineData(DType.Q8_0, 5, 37, 512, false)] [InlineData(DType.Q4_0, 1, 5, 64, false)]
    [InlineData(DType.Q8_0, 6, 9, 128, true)] [InlineData(DType.Q4_0, 6, 9, 128, true)] [InlineData(DType.Q4_0, 2, 9, 128, true)]
    [InlineData(DType.Q8_0, 1, 9, 128, true)]
    [InlineData(DType.Q8_0, 40, 37, 96, false)] [InlineData(DType.Q4_0, 33, 21, 160, false)]
    [InlineData(DType.Q4_0, 35, 17, 128, true)] [InlineData(DType.Q8_0, 32, 16, 64, true)]
    public void QuantizedMatMulIsTheExactInt8ProductUpToFloatSummation(DType dtype, int n, int m, int k, bool ties)
    {
        // Only the kernel's float summation order may differ from the int8 model.
        var rng = new Rng((ulong)(n * 17 + m * 3 + k));
        var x = Activations(rng, n, k, ties);
        var w = Random(rng, m * k);
        byte[] blocks = dtype == DType.Q8_0 ? GgmlQuantizers.QuantizeQ8(w) : GgmlQuantizers.QuantizeQ4(w);
        var expected = Int8Model(dtype, x, blocks, n, m, k);
        using var wq = Tensor.FromBytes(NativeDevice, dtype, blocks, m, k);
        using var xt = On(NativeDevice, x, n, k);
        using var y = Zeros(NativeDevice, n, m);
        NativeDevice.Backend.QuantizedMatMul(xt, wq, y);
        AssertInt8Model(expected, y.ToFloatArray(), m, k);
    }

    /// <summary>x [n, k] in [−2, 2); with <paramref name="ties"/>, every other block of each row has max |x| = 127 and
    /// values at exact halves.</summary>
    internal static float[] Activations(Rng rng, int n, int k, bool ties)
    {
        var x = Random(rng, n * k, -2, 2);
        if (ties)
            for (int i = 0; i < n; i++)
                for (int b = 0; b < k / 32; b += 2)
                    for (int j = 0; j < 32; j++)
                        x[i * k + b * 32 + j] = j == 0 ? 127f : j - 16.5f + i;
        return x;
    }

    /// <summary>Within the float summation error of <paramref name="k"/>/32 block sums of the int8 model.</summary>
    internal static void AssertInt8Model(float[] expected, float[] actual, int m, int k)
    {
        double scale = expected.Max(v => Math.Abs(v));
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 2e-6 * scale * Math.Sqrt(k / 32.0),
                $"y[{i / m}, {i % m}] = {actual[i]}, the int8 model gives {expected[i]}");
    }

    /// <summary>The independent model of the kernel: activations rounded to int8 per 32-block as ggml's Q8_0 does
    /// (d = amax/127, q = round half away from zero of x/d), exact integer block dot products with the file-layout
    /// weight blocks, then the scaled block sums added in double.</summary>
    internal static float[] Int8Model(DType dtype, float[] x, byte[] blocks, int n, int m, int k)
    {
        int rowBytes = k / 32 * (dtype == DType.Q8_0 ? 34 : 18);
        var expected = new float[n * m];
        for (int i = 0; i < n; i++)
        {
            var (xq, xd) = Int8Blocks(x.AsSpan(i * k, k));
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
        return expected;
    }

    /// <summary>ggml's Q8_0 activation rounding of one row: d = max|x|/127 per 32-block, q = round half away from zero.</summary>
    internal static (int[] Q, float[] D) Int8Blocks(ReadOnlySpan<float> x)
    {
        var q = new int[x.Length];
        var d = new float[x.Length / 32];
        for (int b = 0; b < d.Length; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(x[b * 32 + j]));
            d[b] = amax / 127f;
            float id = d[b] != 0 ? 1f / d[b] : 0f;
            for (int j = 0; j < 32; j++) q[b * 32 + j] = (int)MathF.Round(x[b * 32 + j] * id, MidpointRounding.AwayFromZero);
        }
        return (q, d);
    }
}
