using System.Globalization;

namespace SafeRlhf.Backends.Cpu.Native;

/// <summary>A native thread count and what chose it: the option name, an environment variable or "cores".</summary>
public readonly record struct ThreadChoice(int Count, string Source);

/// <summary>Chooses how many threads the native kernels use: an explicit request (the CLI's <c>--threads</c>) over
/// <c>SAFERLHF_THREADS</c> over <c>OMP_NUM_THREADS</c> over the cores this process may run on (its CPU affinity mask,
/// as <see cref="Environment.ProcessorCount"/> reports it). Invalid values are errors that name their source.</summary>
public static class ThreadCount
{
    /// <summary>The project's own variable; it wins over <see cref="OpenMpVariable"/>.</summary>
    public const string Variable = "SAFERLHF_THREADS";

    /// <summary>The OpenMP convention, honoured for its first (outermost) level.</summary>
    public const string OpenMpVariable = "OMP_NUM_THREADS";

    /// <summary>The most threads the native library accepts.</summary>
    public const int Max = 1024;

    /// <summary>Resolves the count. <paramref name="requested"/> null or 0 means "not given"; a positive value wins.
    /// <paramref name="environment"/> reads a variable (null when unset); <paramref name="cores"/> is the fallback.</summary>
    /// <exception cref="ArgumentException">A value out of range or not a number; the message names its source.</exception>
    public static ThreadChoice Resolve(int? requested, Func<string, string?> environment, int cores, string option = "--threads")
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (requested is int r && r != 0)
        {
            if (r < 0 || r > Max) throw new ArgumentException($"{option}: must be 1 to {Max} (0: automatic), got {r}");
            return new(r, option);
        }
        if (Parse(Variable, environment(Variable), firstOfList: false) is int own) return new(own, Variable);
        if (Parse(OpenMpVariable, environment(OpenMpVariable), firstOfList: true) is int omp) return new(omp, OpenMpVariable);
        return new(Math.Clamp(cores, 1, Max), "cores");
    }

    /// <summary><see cref="Resolve"/> with this process's environment and processor count.</summary>
    public static ThreadChoice FromEnvironment(int? requested = null) =>
        Resolve(requested, Environment.GetEnvironmentVariable, Environment.ProcessorCount);

    /// <summary>A variable's count, or null when it is unset or blank. OMP_NUM_THREADS may list one count per nesting
    /// level ("4,2"); the first is the one that applies.</summary>
    private static int? Parse(string name, string? value, bool firstOfList)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        string text = firstOfList ? value.Split(',')[0].Trim() : value.Trim();
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && n <= Max) return n;
        throw new ArgumentException($"{name}: expected a thread count from 1 to {Max}, got '{value}'");
    }
}
