using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Tests.Formats;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>The low-precision weights of the conformance suite (the expected bytes of Quantize come from
/// <see cref="GgmlQuantizers"/>): weight blocks drawn at random, and their values read through the independent bit-field
/// model of the block layouts (<see cref="GgmlBlockModel"/>, shared with the GGUF tests) or, for BF16, by widening the 16
/// stored bits.</summary>
public static class QuantOracle
{
    /// <summary>Weights per block (BF16: one).</summary>
    public static int BlockElements(DType dtype) => dtype == DType.BF16 ? 1 : dtype.BlockElements();

    /// <summary>Stored bytes of an [m, k] weight drawn at random: every bit pattern of the packed quantities, fp16 scales
    /// that are small finite values, negative zero or subnormals; BF16 values of magnitude below 4.</summary>
    public static byte[] RandomWeight(Rng rng, DType dtype, int m, int k)
    {
        if (dtype == DType.BF16)
        {
            var bf = new byte[2 * m * k];
            for (int i = 0; i < m * k; i++)
                BitConverter.TryWriteBytes(bf.AsSpan(2 * i, 2), (ushort)(BitConverter.SingleToUInt32Bits((float)rng.Uniform(-4, 4)) >> 16));
            return bf;
        }
        int size = dtype.BlockBytes(), blocks = m * k / dtype.BlockElements();
        var data = new byte[blocks * size];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)rng.NextUInt64();
        int[] halves = dtype switch { DType.Q6_K => [208], DType.Q4_K or DType.Q5_K => [0, 2], _ => [0] };
        ushort[] odd = [0x8000, 0x0001, 0x83FF, 0x2E66, 0xA0F0, 0x1C00];
        for (int b = 0; b < blocks; b++)
            foreach (int at in halves)
            {
                ushort h = rng.NextInt(3) == 0 ? odd[rng.NextInt(odd.Length)] : BitConverter.HalfToUInt16Bits((Half)rng.Uniform(-0.02, 0.02));
                BitConverter.TryWriteBytes(data.AsSpan(b * size + at, 2), h);
            }
        return data;
    }

    /// <summary>The values of stored weight bytes, element by element.</summary>
    public static double[] WeightValues(DType dtype, byte[] bytes)
    {
        if (dtype == DType.BF16)
            return Enumerable.Range(0, bytes.Length / 2).Select(i => (double)BitConverter.UInt32BitsToSingle((uint)BitConverter.ToUInt16(bytes, 2 * i) << 16)).ToArray();
        var type = Enum.Parse<GgmlType>(dtype.ToString());
        var (elements, size) = GgmlBlockModel.Layout(type);
        var values = new double[bytes.Length / size * elements];
        for (int e = 0; e < values.Length; e++) values[e] = GgmlBlockModel.Element(type, bytes.AsSpan(e / elements * size, size), e % elements);
        return values;
    }

    /// <summary>Activations [n, k] that Q8_0 represents exactly: per 32-block integers in [−127, 127] times a power of two,
    /// one of them ±127, so a kernel that rounds activations to Q8_0 blocks (as ggml's CPU path does) loses nothing and
    /// every backend owes the exact product up to fp32 summation.</summary>
    public static double[] OnTheQ8Grid(Rng rng, int n, int k)
    {
        var x = new double[n * k];
        for (int b = 0; b * 32 < x.Length; b++)
        {
            double scale = Math.Pow(2, -6 - rng.NextInt(3));
            int len = Math.Min(32, x.Length - b * 32);
            for (int j = 0; j < len; j++) x[b * 32 + j] = (rng.NextInt(255) - 127) * scale;
            x[b * 32 + rng.NextInt(len)] = (rng.NextInt(2) == 0 ? 127 : -127) * scale;
        }
        return x;
    }
}
