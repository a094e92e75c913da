using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Tensors;
using static SafeRlhf.Backends.Cpu.Tests.NativeCheck;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The squared gradient norm of clipping: the native sum of squares against the reference (double), across
/// the 16-lane and 65536-element chunk boundaries, independent of the thread count, and accumulated in double.</summary>
public sealed class NativeSumOfSquaresTests
{
    [Theory]
    [InlineData(0)] [InlineData(1)] [InlineData(15)] [InlineData(16)] [InlineData(17)] [InlineData(65536 * 2 + 5)]
    public void SumOfSquaresMatchesReferenceOnAnyThreadCount(int n)
    {
        var values = Random(new Rng((ulong)n + 3), n, -2, 2);
        using var xr = On(ReferenceDevice, values, n);
        double expected = ReferenceDevice.Backend.SumOfSquares(xr);
        using var x = On(NativeDevice, values, n);
        try
        {
            NativeBackend.Threads = 1;
            double one = NativeDevice.Backend.SumOfSquares(x);
            NativeBackend.Threads = 2;
            double two = NativeDevice.Backend.SumOfSquares(x);
            Assert.Equal(one, two);
            // Each square is rounded to fp32 once (relative 2⁻²⁴); the double sum adds nothing measurable.
            Assert.True(Math.Abs(one - expected) <= 1e-7 * expected + 1e-30, $"n = {n}: native {one}, reference {expected}");
            if (n > 0) Assert.True(one > 0);
        }
        finally
        {
            NativeBackend.Threads = 0;
        }
    }

    [Fact]
    public void SumOfSquaresAccumulatesPastWhereFp32WouldStall()
    {
        // 2²⁴ + 64 ones: an fp32 running sum stops growing at 2²⁴; the double sum is exact.
        int n = (1 << 24) + 64;
        using var x = Tensor.Zeros(NativeDevice, DType.F32, n);
        NativeDevice.Backend.Fill(x, 1.0);
        Assert.Equal((double)n, NativeDevice.Backend.SumOfSquares(x));
    }
}
