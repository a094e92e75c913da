using System.Reflection;
using System.Text.RegularExpressions;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Kernels;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>One name per op through every layer, held to <see cref="OpNames"/>: the IBackend methods, the Ops functions, the
/// native sr_ exports and their C++ files, the ILGPU kernels and the kernel benchmark cases.</summary>
public sealed partial class OpNameTests
{
    private static readonly string[] InfrastructureExports =
    [
        "sr_last_error", "sr_version", "sr_cpu_features", "sr_set_num_threads", "sr_get_num_threads", "sr_set_max_isa",
        "sr_probe_fma_f32", "sr_probe_stream", "sr_quant_block_bytes",
    ];

    /// <summary>Export families that are not tensor ops (the data-parallel communicator).</summary>
    private static readonly string[] InfrastructurePrefixes = ["sr_comm_"];

    private static readonly HashSet<string> Names = OpNames.All.Select(o => o.Name).ToHashSet();

    [Fact]
    public void EveryBackendMethodIsAnOpOfTheTableOrItsBackward()
    {
        var methods = typeof(IBackend).GetMethods().Where(m => !m.IsSpecialName).Select(m => m.Name)
            .Except(OpNames.MemoryMembers).Distinct().ToList();
        foreach (var m in methods)
            Assert.True(Names.Contains(m) || (m.EndsWith("Backward", StringComparison.Ordinal) && Names.Contains(m[..^"Backward".Length])),
                $"IBackend.{m} is not in OpNames");
        foreach (var op in OpNames.All)
            Assert.True(methods.Contains(op.Name), $"OpNames lists {op.Name}, which IBackend does not have");
        Assert.Equal(Names.Count, OpNames.All.Count);
        Assert.All(OpNames.All, o => Assert.Equal(o.Name.ToLowerInvariant(), o.Snake.Replace("_", "")));
    }

    [Fact]
    public void OpsFunctionsCarryTheOpName()
    {
        foreach (var op in OpNames.All.Concat(OpNames.Optional).Where(o => o.InOps))
            Assert.True(typeof(Ops).GetMethods(BindingFlags.Public | BindingFlags.Static).Any(m => m.Name == op.Name), $"Ops has no {op.Name}");
    }

    [GeneratedRegex(@"SR_API [^(;]*?\b(sr_\w+)\(")]
    private static partial Regex Export();

    [Fact]
    public void NativeExportsAndFilesCarryTheOpName()
    {
        var header = File.ReadAllText(Path.Combine(Assets.RepoRoot, "native/include/saferlhf.h"));
        var exports = Export().Matches(header).Select(m => m.Groups[1].Value).ToHashSet();
        var bindings = typeof(NativeBackend).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Select(m => m.Name).Where(n => n.StartsWith("sr_", StringComparison.Ordinal)).ToHashSet();
        bool Op(string e) => !InfrastructurePrefixes.Any(p => e.StartsWith(p, StringComparison.Ordinal));
        Assert.Equal(exports.Where(Op).Order(), bindings.Where(Op).Order());     // the communicator binds partly in the GPU backend

        var owned = new HashSet<string>(InfrastructureExports.Concat(exports.Where(e => InfrastructurePrefixes.Any(p => e.StartsWith(p, StringComparison.Ordinal)))));
        foreach (var op in OpNames.All.Concat(OpNames.Optional).Where(o => o.Native))
        {
            var mine = exports.Where(e => Regex.IsMatch(e, $"^sr_{op.Snake}_(forward_|backward_)?(f32|q)")).ToList();
            Assert.True(mine.Count > 0, $"{op.Name}: no sr_{op.Snake}_… export");
            var source = File.ReadAllText(Path.Combine(Assets.RepoRoot, "native/src", op.Snake + ".cpp"));
            foreach (var e in mine) Assert.Contains($"SR_API sr_status {e}(", source);
            if (typeof(IBackend).GetMethod(op.Name + "Backward") is not null)
                Assert.Contains(mine, e => e.StartsWith($"sr_{op.Snake}_backward_", StringComparison.Ordinal));
            owned.UnionWith(mine);
        }
        Assert.Empty(exports.Except(owned));
    }

    [Fact]
    public void GpuKernelsCarryTheOpName()
    {
        var catalog = KernelCatalog.All.Select(KernelCatalog.NameOf).ToHashSet();
        var ops = OpNames.All.Concat(OpNames.Optional).ToList();
        foreach (var op in ops)
            foreach (var k in op.GpuKernels)
            {
                Assert.Contains(k, catalog);
                var (type, method) = (k[..k.IndexOf('.')], k[(k.IndexOf('.') + 1)..]);
                Assert.True(type == op.Name + "Kernels" || method == op.Name || method == op.Name + "Backward",
                    $"{op.Name} runs as {k}: neither the class nor the method carries the op name");
            }
        Assert.Equal(catalog.Order(), ops.SelectMany(o => o.GpuKernels).Order());
    }

    [Fact]
    public void OptionalOpsAreMethodsOfACapabilityInterface()
    {
        var capabilities = typeof(IBackend).Assembly.GetTypes().Where(t => t.IsInterface && t != typeof(IBackend) && t.Namespace == typeof(IBackend).Namespace);
        foreach (var op in OpNames.Optional)
        {
            Assert.Contains(capabilities, t => t.GetMethod(op.Name) is not null);
            Assert.DoesNotContain(op.Name, typeof(IBackend).GetMethods().Select(m => m.Name));
        }
    }

    [Fact]
    public void BenchmarkCasesCarryTheOpName()
    {
        foreach (var name in KernelCases.Kernels)
            Assert.True(OpNames.All.Any(o => name == o.Snake || name.StartsWith(o.Snake + "_", StringComparison.Ordinal)),
                $"benchmark case {name} does not start with an op's snake name");
    }
}
