using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>Linear layers with BF16-stored weights: the native exact kernels (streamed GEMV and widened-panel GEMM,
/// on every instruction set) and the vdpbf16ps kernel against the reference backend, which widens the same bf16
/// values in double. The backward and the forward on every backend are in the conformance suite of
/// SafeRlhf.Tensors.Tests.</summary>
public sealed class NativeBf16Tests
{
    /// <summary>(N, M, K): empty, single, odd, below and across the 16/32-lane widths, GEMV (N ≤ 4) and GEMM, and a
    /// reduced LLaMA FFN shape.</summary>
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 0, 5, 7 }, { 1, 1, 1 }, { 1, 37, 19 }, { 3, 33, 100 }, { 4, 64, 257 }, { 5, 70, 129 }, { 17, 300, 96 }, { 9, 344, 128 },
    };

    /// <summary>A BF16 weight with the same bytes on both devices.</summary>
    private static (Tensor Native, Tensor Reference) Weight(Rng rng, int m, int k)
    {
        using var wf = On(ReferenceDevice, Random(rng, (long)m * k), m, k);
        var wr = Tensor.Zeros(ReferenceDevice, DType.BF16, m, k);
        ReferenceDevice.Backend.Copy(wf, wr);
        return (Tensor.FromBytes(NativeDevice, DType.BF16, wr.ToBytes(), m, k), wr);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardMatchesReferenceOnEveryIsa(int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 1000 + m + k));
        var (w, wr) = Weight(rng, m, k);
        var xv = Random(rng, (long)n * k);
        using var xr = On(ReferenceDevice, xv, n, k);
        using var yr = Zeros(ReferenceDevice, n, m);
        ReferenceDevice.Backend.QuantizedMatMul(xr, wr, yr);
        try
        {
            foreach (var isa in new[] { NativeIsa.Scalar, NativeIsa.Avx2, NativeIsa.Avx512 })
            {
                NativeBackend.SetMaxIsa(isa);
                using var x = On(NativeDevice, xv, n, k);
                using var y = Zeros(NativeDevice, n, m);
                NativeDevice.Backend.QuantizedMatMul(x, w, y);
                Close(yr, y, 1e-5 * Math.Sqrt(k + 1), 1e-5, $"y [{n}, {m}] (K = {k}) on {isa}");
            }
        }
        finally
        {
            NativeBackend.SetMaxIsa(NativeIsa.Avx512);
            w.Dispose();
            wr.Dispose();
        }
    }

    /// <summary>fp32 → bf16 with round-to-nearest-even, written here from the format's definition (NaN not needed).</summary>
    private static float RoundToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void VdpbfKernelEqualsTheProductWithXRoundedToBf16(int n, int m, int k)
    {
        var rng = new Rng((ulong)(n * 31 + m * 5 + k));
        var (w, wr) = Weight(rng, m, k);
        var xv = Random(rng, (long)n * k);
        using var x = On(NativeDevice, xv, n, k);
        using var y = Zeros(NativeDevice, n, m);
        if (!CpuFeatures.Detect().Flags.HasFlag(CpuFeatureFlags.Avx512Bf16))
        {
            var e = Assert.Throws<BackendException>(() => NativeBackend.QuantizedMatMulBf16Dot(x, w, y));
            Assert.Contains("AVX-512 BF16", e.Message);
            return;
        }
        NativeBackend.QuantizedMatMulBf16Dot(x, w, y);

        // Expected: the exact product of the rounded activations with the bf16 weights, in double.
        var rounded = Array.ConvertAll(xv, RoundToBf16);
        using var xr = On(ReferenceDevice, rounded, n, k);
        using var yr = Zeros(ReferenceDevice, n, m);
        ReferenceDevice.Backend.QuantizedMatMul(xr, wr, yr);
        Close(yr, y, 1e-5 * Math.Sqrt(k + 1), 1e-5, $"y [{n}, {m}] (K = {k}) with vdpbf16ps");
        if (n > 0 && k > 8)
        {
            // ...and it is not the exact product: the rounding of x shows.
            using var exact = Zeros(NativeDevice, n, m);
            NativeDevice.Backend.QuantizedMatMul(x, w, exact);
            Assert.NotEqual(exact.ToFloatArray(), y.ToFloatArray());
        }
        w.Dispose();
        wr.Dispose();
    }
}
