using SafeRlhf.Backends.Cpu.Native;

namespace SafeRlhf.Backends.Cpu.Tests;

/// <summary>The precedence of the native thread count: --threads over SAFERLHF_THREADS over OMP_NUM_THREADS over the
/// cores, and errors that name the option or variable at fault.</summary>
public sealed class ThreadCountTests
{
    private static Func<string, string?> Env(string? own = null, string? omp = null) => name => name switch
    {
        ThreadCount.Variable => own,
        ThreadCount.OpenMpVariable => omp,
        _ => null,
    };

    [Fact]
    public void TheOptionWinsOverBothVariables() =>
        Assert.Equal(new ThreadChoice(3, "--threads"), ThreadCount.Resolve(3, Env("5", "7"), cores: 16));

    [Fact]
    public void TheProjectVariableWinsOverOpenMp() =>
        Assert.Equal(new ThreadChoice(5, ThreadCount.Variable), ThreadCount.Resolve(null, Env("5", "7"), cores: 16));

    [Fact]
    public void OpenMpIsUsedWhenItIsTheOnlyOne() =>
        Assert.Equal(new ThreadChoice(7, ThreadCount.OpenMpVariable), ThreadCount.Resolve(0, Env(omp: "7"), cores: 16));

    [Fact]
    public void OpenMpNestingListsUseTheirFirstLevel() =>
        Assert.Equal(4, ThreadCount.Resolve(null, Env(omp: "4,2"), cores: 16).Count);

    [Fact]
    public void WithoutOptionOrVariablesTheCoresDecide() =>
        Assert.Equal(new ThreadChoice(6, "cores"), ThreadCount.Resolve(0, Env(" ", ""), cores: 6));

    [Fact]
    public void ZeroAsTheOptionMeansNotGiven() =>
        Assert.Equal(5, ThreadCount.Resolve(0, Env("5"), cores: 16).Count);

    [Theory]
    [InlineData(-1)]
    [InlineData(ThreadCount.Max + 1)]
    public void AnOptionOutOfRangeNamesTheOption(int threads)
    {
        var ex = Assert.Throws<ArgumentException>(() => ThreadCount.Resolve(threads, Env(), cores: 2));
        Assert.StartsWith("--threads:", ex.Message);
        Assert.Contains(threads.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    [InlineData("two")]
    [InlineData("2.5")]
    [InlineData("4,2")]
    public void AnInvalidProjectVariableNamesIt(string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => ThreadCount.Resolve(null, Env(value, "2"), cores: 2));
        Assert.StartsWith(ThreadCount.Variable + ":", ex.Message);
        Assert.Contains($"'{value}'", ex.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("many")]
    [InlineData(",4")]
    public void AnInvalidOpenMpVariableNamesIt(string value)
    {
        var ex = Assert.Throws<ArgumentException>(() => ThreadCount.Resolve(null, Env(omp: value), cores: 2));
        Assert.StartsWith(ThreadCount.OpenMpVariable + ":", ex.Message);
    }

    [Fact]
    public void AValidOptionHidesAnInvalidVariable() =>
        Assert.Equal(2, ThreadCount.Resolve(2, Env("bad", "bad"), cores: 8).Count);
}
