using SafeRlhf.Cli.Distributed;
using Xunit;

namespace SafeRlhf.Cli.Tests;

/// <summary>The MPI communicator as `saferlhf` uses it, in real two-rank jobs on this machine.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class DataParallelTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public void BenchCommVerifiesEveryCollectiveAcrossTwoRanks()
    {
        var (code, stdout, stderr) = MpiHarness.Run(2, Timeout, "bench-comm", "--quick");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("ranks 2 · transport mpi", stdout);
        Assert.Contains("all collectives      verified", stdout);
        Assert.DoesNotContain("FAILED", stdout);
    }

    [Fact]
    public void WithoutALauncherTheJobIsOneLocalRank()
    {
        var (code, stdout, stderr) = CliHarness.Run("bench-comm", "--quick");
        Assert.True(code == 0, stderr);
        Assert.Contains("ranks 1 · transport local", stdout);
    }

    [Theory]
    [InlineData(null, null, null, 1)]
    [InlineData("2", null, null, 2)]
    [InlineData(null, "4", null, 4)]
    [InlineData(null, null, "3", 3)]
    public void TheLauncherAnnouncesTheWorldSize(string? ompi, string? pmi, string? slurm, int expected)
    {
        var env = new Dictionary<string, string?> { ["OMPI_COMM_WORLD_SIZE"] = ompi, ["PMI_SIZE"] = pmi, ["SLURM_STEP_NUM_TASKS"] = slurm };
        Assert.Equal(expected, Communicators.LaunchedWorldSize(name => env.GetValueOrDefault(name)));
    }

    [Fact]
    public void AMalformedWorldSizeNamesTheVariable()
    {
        var e = Assert.Throws<CliException>(() => Communicators.LaunchedWorldSize(name => name == "PMI_SIZE" ? "two" : null));
        Assert.Contains("PMI_SIZE='two'", e.Message);
    }
}
