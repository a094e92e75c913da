using SafeRlhf.Llama.Formats;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Llama.Tests.Formats;

/// <summary>Every ggml block decoder (the K-quants kept as stored, the types dequantized at load, and Q8_0/Q4_0)
/// against <see cref="GgmlBlockModel"/>, bit for bit, on random blocks with awkward fp16 scales.</summary>
public sealed class GgmlDequantizeTests
{
    public static TheoryData<GgmlType> Blocked => new()
    {
        GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
        GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
    };

    /// <summary>The decoder the engine uses for a type: <see cref="KQuantBlocks"/> for the kept K-quants,
    /// <see cref="GgmlLoadTimeBlocks"/> for the types dequantized at load, the reference backend for Q8_0/Q4_0.</summary>
    internal static float[] Decode(GgmlType type, byte[] blocks, int count)
    {
        var x = new float[count];
        if (GgmlTypes.Kept(type) is { } dtype)
        {
            using var q = Tensor.FromBytes(TestDevices.Reference, dtype, blocks, 1, count);
            using var f = Ops.Dequantize(q);
            if (dtype.IsKQuant())
            {
                KQuantBlocks.DequantizeRow(dtype, blocks, x);
                Assert.Equal(x, f.ToArray<float>());  // the backend's Dequantize is the same decoder
            }
            else f.ToArray<float>().CopyTo(x, 0);
        }
        else GgmlLoadTimeBlocks.Dequantize(type, blocks, x);
        return x;
    }

    [Theory]
    [MemberData(nameof(Blocked))]
    public void DecoderMatchesTheBitFieldModelExactly(GgmlType type)
    {
        var (per, bytes) = GgmlBlockModel.Layout(type);
        Assert.Equal(bytes, GgmlTypes.BlockBytes(type));
        Assert.Equal(per, GgmlTypes.BlockElements(type));
        var rng = new Rng(0x6761 + (ulong)type);
        const int blocks = 24;
        var data = GgmlBlockModel.RandomBlocks(rng, type, blocks);
        var actual = Decode(type, data, blocks * per);
        int negativeZeros = 0;
        for (int b = 0; b < blocks; b++)
            for (int e = 0; e < per; e++)
            {
                float expected = GgmlBlockModel.Element(type, data.AsSpan(b * bytes, bytes), e);
                float got = actual[b * per + e];
                if (BitConverter.SingleToInt32Bits(expected) != BitConverter.SingleToInt32Bits(got) && !(float.IsNaN(expected) && float.IsNaN(got)))
                    Assert.Fail($"{type} block {b} element {e}: expected {expected} ({BitConverter.SingleToInt32Bits(expected):X8}), got {got} ({BitConverter.SingleToInt32Bits(got):X8})");
                if (got == 0 && float.IsNegative(got)) negativeZeros++;
            }
        Assert.True(negativeZeros > 0 || type is GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.Q2_K or GgmlType.Q4_K or GgmlType.Q5_K,
            $"{type}: no negative zero among the decoded values (the awkward scales include −0)");
    }

    [Theory]
    [InlineData(DType.Q4_K)] [InlineData(DType.Q5_K)] [InlineData(DType.Q6_K)]
    public void EncoderRoundTripsWithinTheBlockResolution(DType dtype)
    {
        var rng = new Rng(77 + (ulong)dtype);
        const int n = 4 * DTypeInfo.KQuantBlock;
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)rng.Uniform(-2, 2);
        for (int i = 256; i < 512; i++) x[i] = 0;          // an all-zero super-block
        for (int i = 512; i < 544; i++) x[i] = -5 + i % 3;  // a shifted sub-block
        var blocks = new byte[dtype.ByteCount(n)];
        KQuantEncoder.QuantizeRow(dtype, x, blocks);
        var back = new float[n];
        KQuantBlocks.DequantizeRow(dtype, blocks, back);
        // Error bound: half a quantization step of the sub-block's range, plus the 6-/8-bit scale rounding.
        float levels = dtype switch { DType.Q4_K => 15, DType.Q5_K => 31, _ => 63 };
        for (int i = 0; i < n; i++)
        {
            int group = dtype == DType.Q6_K ? 16 : 32;
            var sub = x.AsSpan(i / group * group, group).ToArray();
            float range = Math.Max(sub.Max(), 0) - Math.Min(sub.Min(), 0);
            Assert.True(Math.Abs(back[i] - x[i]) <= range / levels * 1.3f + 1e-6f, $"{dtype} element {i}: {x[i]} → {back[i]}");
        }
        Assert.All(back.AsSpan(256, 256).ToArray(), v => Assert.Equal(0f, Math.Abs(v)));
    }
}
