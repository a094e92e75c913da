using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Runs one IBackend call on the native backend and on the reference backend with identical inputs
/// and compares every output element within atol + rtol·|reference|.</summary>
internal static class NativeCheck
{
    public static readonly Device NativeDevice = new(new NativeBackend());
    public static readonly Device ReferenceDevice = new(new ReferenceBackend());

    public static float[] Random(Rng rng, long count, double low = -1, double high = 1)
    {
        var v = new float[count];
        for (long i = 0; i < count; i++) v[i] = (float)rng.Uniform(low, high);
        return v;
    }

    /// <summary>count values on the Q8_0 grid: per 32-block an integer in [−127, 127] times a power of two, with ±127 in
    /// every block, so rounding them to int8 per block (the activations of the int8 products) is exact.</summary>
    public static float[] OnTheQ8Grid(Rng rng, long count)
    {
        var v = new float[count];
        for (long b = 0; b * 32 < count; b++)
        {
            float scale = MathF.Pow(2, -4 - rng.NextInt(3));
            int len = (int)Math.Min(32, count - b * 32);
            for (int j = 0; j < len; j++) v[b * 32 + j] = (rng.NextInt(255) - 127) * scale;
            v[b * 32 + rng.NextInt(len)] = (rng.NextInt(2) == 0 ? 127 : -127) * scale;
        }
        return v;
    }

    public static Tensor On(Device device, float[] values, params int[] dims) => Tensor.FromArray(device, values, dims);
    public static Tensor On(Device device, int[] values, params int[] dims) => Tensor.FromArray(device, values, dims);
    public static Tensor Zeros(Device device, params int[] dims) => Tensor.Zeros(device, DType.F32, dims);

    /// <summary>Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise (infinities must match exactly).</summary>
    public static void Close(Tensor expected, Tensor actual, double atol, double rtol, string what)
    {
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        var e = expected.ToFloatArray();
        var a = actual.ToFloatArray();
        for (int i = 0; i < e.Length; i++)
        {
            if (float.IsInfinity(e[i]) || float.IsInfinity(a[i]))
            {
                Assert.True(e[i] == a[i], $"{what}: element {i} expected {e[i]}, got {a[i]}");
                continue;
            }
            double err = Math.Abs((double)a[i] - e[i]);
            Assert.True(err <= atol + rtol * Math.Abs(e[i]) && !float.IsNaN(a[i]),
                $"{what}: element {i} of {e.Length}: expected {e[i]:G9}, got {a[i]:G9} (|diff| {err:G3})");
        }
    }

    /// <summary>‖a − b‖² / ‖b‖² (the normalised mean squared error of a against reference b).</summary>
    public static double NormalisedMse(float[] actual, float[] expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = (double)actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return den == 0 ? num : num / den;
    }
}
