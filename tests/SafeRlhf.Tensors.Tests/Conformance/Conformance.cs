using SafeRlhf.Backends.Gpu;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>What the conformance suite runs on: every backend of this machine (CUDA only where present), one comparison
/// helper and one set of shapes, the empty and odd ones included. Expected values come from the naive double formulas
/// written in each test, never from a backend.</summary>
public static class Conformance
{
    /// <summary>The xunit collection of every test class that runs on the shared ILGPU CPU device: its accelerator is not
    /// used from two test threads at once.</summary>
    public const string SharedIlgpuDevice = "shared ILGPU CPU device";

    private static readonly Lazy<Device?> s_cuda = new(() => GpuBackend.IsCudaAvailable ? new Device(GpuBackend.CreateCuda()) : null);

    /// <summary>With SAFERLHF_REQUIRE_CUDA=1 the CUDA cases run (and fail) on a machine without a usable CUDA device
    /// instead of being left out.</summary>
    private static bool CudaCases => GpuBackend.IsCudaAvailable || Environment.GetEnvironmentVariable("SAFERLHF_REQUIRE_CUDA") == "1";

    /// <summary>The backends of this machine by name.</summary>
    public static string[] BackendNames => CudaCases ? ["reference", "native", "ilgpu-cpu", "cuda"] : ["reference", "native", "ilgpu-cpu"];

    public static TheoryData<string> Backends() => new(BackendNames);

    public static Device Device(string backend) => backend switch
    {
        "reference" => TestDevices.Reference,
        "native" => TestDevices.Native,
        "ilgpu-cpu" => TestDevices.IlgpuCpu,
        "cuda" => s_cuda.Value ?? throw new InvalidOperationException("SAFERLHF_REQUIRE_CUDA=1 but no CUDA device is usable"),
        _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, null),
    };

    /// <summary>Elementwise shapes: empty, a single element, an odd length past one vector, a matrix, a rank-3 block.</summary>
    public static readonly int[][] Shapes = [[0, 3], [1], [37], [3, 5], [2, 3, 17]];

    /// <summary>Broadcast pairs (a, b → the broadcast shape).</summary>
    public static readonly (int[] A, int[] B)[] BroadcastPairs =
        [([0, 3], [1, 3]), ([37], [1]), ([3, 5], [3, 1]), ([3, 5], [1, 5]), ([2, 3, 17], [3, 1]), ([2, 1, 17], [1, 3, 1])];

    /// <summary>Values in [lo, hi) from a fixed seed, rounded to halves when <paramref name="halves"/> (so that ties occur).</summary>
    public static double[] Values(ulong seed, long n, double lo = -2, double hi = 2, bool halves = false)
    {
        var rng = new Rng(seed);
        return Enumerable.Range(0, (int)n).Select(_ => rng.Uniform(lo, hi)).Select(v => halves ? Math.Round(v * 2) / 2 : v).ToArray();
    }

    /// <summary>The values as the F32 tensors of <see cref="Make"/> hold them (what the formulas of the tests start from).</summary>
    public static double[] F32(double[] values) => Array.ConvertAll(values, v => (double)(float)v);

    /// <summary><see cref="Values"/> rounded to F32.</summary>
    public static double[] Values32(ulong seed, long n, double lo = -2, double hi = 2) => F32(Values(seed, n, lo, hi));

    public static long Numel(int[] dims) => dims.Aggregate(1L, (a, d) => a * d);

    /// <summary>F32 on every backend (the compute type the fast backends support), from double values.</summary>
    public static Tensor Make(Device d, double[] values, params int[] dims) => Tensor.FromArray(d, Array.ConvertAll(values, v => (float)v), dims);

    /// <summary>The one comparison: |actual − expected| ≤ atol + rtol·|expected| elementwise, NaN and
    /// infinities only where expected.</summary>
    public static void AssertClose(double[] expected, Tensor actual, string what, double atol = 1e-5, double rtol = 1e-5) =>
        AssertClose(expected, actual.ToDoubleArray(), what, atol, rtol);

    /// <summary><see cref="AssertClose(double[], Tensor, string, double, double)"/> of values a backend returned to the host.</summary>
    public static void AssertClose(double[] expected, double[] got, string what, double atol, double rtol)
    {
        Assert.Equal(expected.Length, got.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNaN(expected[i])) { Assert.True(double.IsNaN(got[i]), $"{what}[{i}]: expected NaN, got {got[i]}"); continue; }
            if (double.IsInfinity(expected[i])) { Assert.True(got[i] == expected[i], $"{what}[{i}]: expected {expected[i]}, got {got[i]}"); continue; }
            Assert.True(Math.Abs(got[i] - expected[i]) <= atol + rtol * Math.Abs(expected[i]),
                $"{what}[{i}]: expected {expected[i]:R}, got {got[i]:R}");
        }
    }
}
