using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>One ILGPU backend for the whole test run (kernels compile once): CUDA when a GPU is present,
/// otherwise the ILGPU CPU accelerator with 16-thread groups (warp 4), which runs the same kernels.
/// With SAFERLHF_REQUIRE_CUDA=1 a machine without a working CUDA device fails every GPU test instead of
/// falling back; the chosen accelerator is written to the test output either way.</summary>
public sealed class GpuFixture : IDisposable
{
    public const string RequireCudaVariable = "SAFERLHF_REQUIRE_CUDA";

    public GpuFixture()
    {
        Backend = Choose(Environment.GetEnvironmentVariable(RequireCudaVariable), GpuBackend.IsCudaAvailable);
        Gpu = new Device(Backend);
        Reference = new Device(new ReferenceBackend());
        Console.WriteLine($"[gpu tests] running on {Backend.Name}: {Backend.AcceleratorInfo}");
    }

    /// <summary>The backend the tests run on for a value of <see cref="RequireCudaVariable"/>.</summary>
    public static GpuBackend Choose(string? requireCuda, bool cudaAvailable)
    {
        bool require = requireCuda switch
        {
            null or "" or "0" => false,
            "1" => true,
            _ => throw new InvalidOperationException($"{RequireCudaVariable}='{requireCuda}': expected 1 or 0"),
        };
        if (cudaAvailable) return GpuBackend.CreateCuda();
        if (require)
            throw new InvalidOperationException(
                $"{RequireCudaVariable}=1 but no CUDA device is usable (no NVIDIA driver, no GPU, or the CUDA driver failed to load); " +
                "refusing to fall back to the ILGPU CPU accelerator");
        return GpuBackend.CreateCpu(groupSize: 16);
    }

    public GpuBackend Backend { get; }
    public Device Gpu { get; }
    public Device Reference { get; }

    public void Dispose() => Backend.Dispose();
}

[CollectionDefinition(Name)]
public sealed class GpuCollection : ICollectionFixture<GpuFixture>
{
    public const string Name = "gpu";
}

/// <summary>Helpers for comparing the ILGPU backend with the reference backend through the same IBackend calls.</summary>
[Collection(GpuCollection.Name)]
public abstract class GpuTestBase(GpuFixture fixture)
{
    protected GpuFixture Fixture { get; } = fixture;
    protected Device Gpu => Fixture.Gpu;
    protected Device Ref => Fixture.Reference;
    protected IBackend G => Fixture.Gpu.Backend;
    protected IBackend R => Fixture.Reference.Backend;

    protected static float[] Random(int seed, long count, float scale = 1f)
    {
        var rng = new System.Random(seed);
        var data = new float[count];
        for (long i = 0; i < count; i++) data[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return data;
    }

    /// <summary>The same values on both devices.</summary>
    protected (Tensor Gpu, Tensor Ref) Pair(float[] data, params int[] dims) =>
        (Tensor.FromArray(Gpu, data, dims), Tensor.FromArray(Ref, data, dims));

    protected (Tensor Gpu, Tensor Ref) PairInt(int[] data, params int[] dims) =>
        (Tensor.FromArray(Gpu, data, dims), Tensor.FromArray(Ref, data, dims));

    protected (Tensor Gpu, Tensor Ref) Zeros(DType dtype, params int[] dims) =>
        (Tensor.Zeros(Gpu, dtype, dims), Tensor.Zeros(Ref, dtype, dims));

    protected (Tensor Gpu, Tensor Ref) Zeros(params int[] dims) => Zeros(DType.F32, dims);

    /// <summary>Asserts |gpu − ref| ≤ atol + rtol·|ref| elementwise (infinities must match exactly).</summary>
    protected static void AssertClose((Tensor Gpu, Tensor Ref) pair, double atol = 1e-4, double rtol = 1e-4, string what = "")
    {
        Assert.True(pair.Gpu.Shape.SameDims(pair.Ref.Shape), $"{what}: shape {pair.Gpu.Shape} vs {pair.Ref.Shape}");
        var g = pair.Gpu.ToArray<double>();
        var r = pair.Ref.ToArray<double>();
        AssertClose(g, r, atol, rtol, what);
    }

    protected static void AssertClose(double[] g, double[] r, double atol, double rtol, string what)
    {
        Assert.Equal(r.Length, g.Length);
        for (int i = 0; i < r.Length; i++)
        {
            if (double.IsInfinity(r[i]) || double.IsNaN(r[i]))
            {
                Assert.True(g[i].Equals(r[i]), $"{what}[{i}]: gpu {g[i]} vs reference {r[i]}");
                continue;
            }
            double err = Math.Abs(g[i] - r[i]);
            Assert.True(err <= atol + rtol * Math.Abs(r[i]), $"{what}[{i}]: gpu {g[i]} vs reference {r[i]} (|Δ| = {err:g3})");
        }
    }
}
