using System.Text.RegularExpressions;
using SafeRlhf.Kernels;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Backends.Gpu.Tests;

/// <summary>Every kernel compiles to PTX without a GPU. With SAFERLHF_PTX_DIR set, the PTX files are written
/// there for .ci/ptx-check.sh to assemble with ptxas.</summary>
public sealed partial class PtxCompileTests
{
    [GeneratedRegex(@"LoadStreamKernel<[^(]*>\((\w+Kernels)\.(\w+)\)")]
    private static partial Regex LoadedKernel();

    /// <summary>The catalog (what the PTX check compiles) is exactly the set of kernels the GPU backend loads: a kernel
    /// added without <see cref="KernelAttribute"/> would escape the PTX check, one marked but never loaded is dead.</summary>
    [Fact]
    public void CatalogIsExactlyTheKernelsTheBackendLoads()
    {
        var source = File.ReadAllText(Path.Combine(Assets.RepoRoot, "src/SafeRlhf.Backends.Gpu/KernelCache.cs"));
        var loaded = LoadedKernel().Matches(source).Select(m => $"{m.Groups[1].Value}.{m.Groups[2].Value}").Order().ToArray();
        Assert.True(loaded.Length >= 20, $"only {loaded.Length} kernel loads found in KernelCache.cs: the pattern no longer matches");
        Assert.Equal(loaded, KernelCatalog.All.Select(KernelCatalog.NameOf).Order().ToArray());
    }

    /// <summary>ILGPU 1.5.3 emits <c>.target sm_80</c> whatever architecture is asked for (PtxCompiler's remark):
    /// the sm_90 row expects exactly that, and .ci/ptx-check.sh retargets it. Should ILGPU start emitting sm_90,
    /// this row fails and the retargeting can go.</summary>
    [Theory]
    [InlineData(8, 0, "sm_80")]
    [InlineData(9, 0, "sm_80")]
    public void EveryKernelCompilesToPtx(int major, int minor, string target)
    {
        var kernels = PtxCompiler.CompileAll(major, minor);
        Assert.Equal(KernelCatalog.All.Select(KernelCatalog.NameOf), kernels.Select(k => k.Name));
        foreach (var k in kernels)
        {
            Assert.Contains(".visible .entry " + k.EntryName, k.Ptx);
            Assert.Contains(".version 7.8", k.Ptx);
            Assert.Matches(@"\.target " + target + @"\b", k.Ptx);
        }
        string? dir = Environment.GetEnvironmentVariable("SAFERLHF_PTX_DIR");
        if (!string.IsNullOrEmpty(dir))
        {
            var files = PtxCompiler.WriteAll(dir, major, minor);
            Assert.All(files, f => Assert.True(new FileInfo(f).Length > 0, $"{f} is empty"));
            Assert.Equal(kernels.Select(k => k.Name + ".ptx").Order(), files.Select(Path.GetFileName).Order());
        }
    }
}
