using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The narrower GEMM micro-kernels (AVX2 6×16, scalar 4×4) and quantized dot products (AVX2, scalar, and
/// AVX-512 VNNI one row at a time where VBMI is missing), which an AVX-512 machine would otherwise never run, against
/// the reference; the quantized product at 29 and at 3 activation rows. The ISA cap is process-wide;
/// every path is exact to the same tolerance, so concurrently running tests stay valid.</summary>
[Collection(nameof(NativeIsaTests))]
public sealed class NativeIsaTests
{
    [Theory]
    [InlineData(NativeIsa.Scalar)] [InlineData(NativeIsa.Avx2)] [InlineData(NativeIsa.Avx512NoVbmi)] [InlineData(NativeIsa.Avx512)]
    public void GemmAndQuantizedMatMulOnEveryIsa(NativeIsa isa)
    {
        var rng = new Rng((ulong)isa + 40);
        int m = 29, n = 37, k = 96;
        var av = Random(rng, m * k);
        var bv = Random(rng, n * k);
        try
        {
            NativeBackend.SetMaxIsa(isa);
            foreach (bool transB in new[] { false, true })
            {
                var results = new Tensor[2];
                int slot = 0;
                foreach (var dev in new[] { ReferenceDevice, NativeDevice })
                {
                    using var a = On(dev, av, 1, m, k);
                    using var b = On(dev, bv, transB ? [1, n, k] : [1, k, n]);
                    var c = Zeros(dev, 1, m, n);
                    dev.Backend.MatMul(a, b, c, false, transB, false);
                    results[slot++] = c;
                }
                Close(results[0], results[1], 1e-4, 1e-5, $"MatMul on {isa}");
            }
            foreach (var dtype in new[] { DType.Q8_0, DType.Q4_0 })
                foreach (int rows in new[] { m, 3 })
                {
                    var xv = av[..(rows * k)];
                    using var w = On(NativeDevice, bv, n, k);
                    using var wq = Tensor.Zeros(NativeDevice, dtype, n, k);
                    NativeDevice.Backend.Quantize(w, wq);
                    using var x = On(NativeDevice, xv, rows, k);
                    using var y = Zeros(NativeDevice, rows, n);
                    NativeDevice.Backend.QuantizedMatMul(x, wq, y);
                    using var wr = Tensor.FromBytes(ReferenceDevice, dtype, wq.ToBytes(), n, k);
                    using var xr = On(ReferenceDevice, xv, rows, k);
                    using var yr = Zeros(ReferenceDevice, rows, n);
                    ReferenceDevice.Backend.QuantizedMatMul(xr, wr, yr);
                    Assert.True(NormalisedMse(y.ToFloatArray(), yr.ToFloatArray()) < 1e-4, $"{dtype} on {isa}, {rows} rows");
                }
        }
        finally
        {
            NativeBackend.SetMaxIsa(NativeIsa.Avx512);
        }
    }
}
