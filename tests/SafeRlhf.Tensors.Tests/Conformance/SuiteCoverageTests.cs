using SafeRlhf.TestSupport;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>The suite calls every op of the op-name table, and its backward where <see cref="IBackend"/> has one, so that a
/// new op cannot be left to a single backend's tests.</summary>
public sealed class SuiteCoverageTests
{
    [Fact]
    public void EveryBackendOpAndItsBackwardIsCalledByTheSuite()
    {
        var folder = Path.Combine(Assets.RepoRoot, "tests/SafeRlhf.Tensors.Tests/Conformance");
        var source = string.Concat(Directory.EnumerateFiles(folder, "*ConformanceTests.cs").Select(File.ReadAllText));
        foreach (var op in OpNames.All)
        {
            Assert.Contains($"Backend.{op.Name}(", source);
            if (typeof(IBackend).GetMethod(op.Name + "Backward") is not null) Assert.Contains($"Backend.{op.Name}Backward(", source);
        }
    }
}
