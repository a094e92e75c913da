using System.Diagnostics;

namespace SafeRlhf.Cli.Tests;

/// <summary>Runs `saferlhf` (the build beside this test assembly) as an MPI job on this machine:
/// `mpirun --oversubscribe -np N` (with --allow-run-as-root when the tests run as root, as in CI).</summary>
public static class MpiHarness
{
    /// <summary>mpirun's path; a machine without Open MPI fails the test with what to install.</summary>
    public static string MpiRun =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("mpirun not found on PATH: the data-parallel tests need Open MPI " +
                                               "(Debian: apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it)");

    /// <summary>Starts the job; the caller waits for it (see <see cref="Run"/>).</summary>
    public static Process Start(int ranks, params string[] args)
    {
        var info = new ProcessStartInfo(MpiRun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Environment.UserName == "root") info.ArgumentList.Add("--allow-run-as-root");
        foreach (var a in new[] { "--oversubscribe", "-np", ranks.ToString(), "--bind-to", "none" }) info.ArgumentList.Add(a);
        info.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "saferlhf.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["SAFERLHF_THREADS"] = "1";
        return Process.Start(info) ?? throw new InvalidOperationException("could not start mpirun");
    }

    /// <summary>Runs the job to the end (at most <paramref name="timeout"/>) and returns its exit code and output.</summary>
    public static (int Code, string Out, string Error) Run(int ranks, TimeSpan timeout, params string[] args)
    {
        using var job = Start(ranks, args);
        var stdout = job.StandardOutput.ReadToEndAsync();
        var stderr = job.StandardError.ReadToEndAsync();
        if (!job.WaitForExit(timeout))
        {
            job.Kill(entireProcessTree: true);
            throw new TimeoutException($"mpirun -np {ranks} saferlhf {string.Join(' ', args)} did not finish in {timeout}");
        }
        return (job.ExitCode, stdout.Result, stderr.Result);
    }
}
