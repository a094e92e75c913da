using System.Diagnostics;
using System.Globalization;

namespace SafeRlhf.TestSupport.Fuzz;

/// <summary>The result of fuzzing one reader: counts per outcome and per mutation kind, and every defect as a
/// reproducible (seed, index) line.</summary>
public sealed record FuzzReport(string Target, int Seed, int Inputs, IReadOnlyDictionary<FuzzOutcome, int> Counts,
    IReadOnlyDictionary<string, int> Kinds, IReadOnlyList<string> Defects, TimeSpan Elapsed)
{
    /// <summary>The first refusal message of each mutation kind (to see what the mutations reach).</summary>
    public IReadOnlyDictionary<string, string> SampleRefusals { get; init; } = new Dictionary<string, string>();

    /// <summary>One line: target, inputs, outcome counts and time.</summary>
    public string Summary => $"{Target}: {Inputs} inputs (seed {Seed}) in {Elapsed.TotalSeconds:F1} s: " +
                             string.Join(", ", Enum.GetValues<FuzzOutcome>().Select(o => $"{o.ToString().ToLowerInvariant()} {Counts.GetValueOrDefault(o)}"));
}

/// <summary>Runs a <see cref="FuzzTarget"/> over mutated inputs. Environment: SAFERLHF_FUZZ_INPUTS (inputs per
/// reader, default the target's short CI count), SAFERLHF_FUZZ_SEED (default 1), SAFERLHF_FUZZ_INDEX (run that one
/// input only, to reproduce a reported defect), SAFERLHF_FUZZ_TIMEOUT_S (per input, default 20),
/// SAFERLHF_FUZZ_REPORT (a file that receives one summary line per reader).</summary>
public static class FuzzRunner
{
    /// <summary>Runs <paramref name="target"/>, writes its summary and sample refusals to the test output, and fails on
    /// any defect, or when no input was refused (the mutations would not reach the reader) unless
    /// <paramref name="mayRefuseNone"/>.</summary>
    public static void RunAndAssert(FuzzTarget target, Xunit.Abstractions.ITestOutputHelper output, bool mayRefuseNone = false)
    {
        var report = Run(target);
        output.WriteLine(report.Summary);
        foreach (var (kind, message) in report.SampleRefusals) output.WriteLine($"  {kind}: {message}");
        Xunit.Assert.True(report.Defects.Count == 0, $"{report.Summary}\n{string.Join("\n", report.Defects.Take(5))}");
        Xunit.Assert.True(mayRefuseNone || report.Counts[FuzzOutcome.Refused] > 0,
            $"no input was refused: the mutations do not reach the reader ({report.Summary})");
    }

    /// <summary>Fuzzes <paramref name="target"/> and returns the report (the caller asserts that it has no defects).</summary>
    public static FuzzReport Run(FuzzTarget target)
    {
        int seed = EnvInt("SAFERLHF_FUZZ_SEED") ?? 1;
        int inputs = EnvInt("SAFERLHF_FUZZ_INPUTS") ?? target.DefaultInputs;
        int? only = EnvInt("SAFERLHF_FUZZ_INDEX");
        var timeout = TimeSpan.FromSeconds(EnvInt("SAFERLHF_FUZZ_TIMEOUT_S") ?? 20);

        string seedPath = target.Seed();
        var mutator = new Mutator(File.ReadAllBytes(seedPath), target.Kind);
        string work = Path.Combine(Path.GetTempPath(), $"saferlhf-fuzz-{target.Name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        var counts = Enum.GetValues<FuzzOutcome>().ToDictionary(o => o, _ => 0);
        var kinds = new Dictionary<string, int>(StringComparer.Ordinal);
        var defects = new List<string>();
        var samples = new Dictionary<string, string>(StringComparer.Ordinal);
        var clock = Stopwatch.StartNew();
        try
        {
            if (target.Template?.Invoke() is { } template) CopyTree(template, work);
            string file = Path.Combine(work, target.FileName);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            for (int index = only ?? 0; index < (only is null ? inputs : only.Value + 1); index++)
            {
                byte[] input = mutator.Mutate(seed, index, out string kind);
                File.WriteAllBytes(file, input);
                kinds[kind.Split('+')[0]] = kinds.GetValueOrDefault(kind.Split('+')[0]) + 1;
                var (outcome, detail) = RunOne(target, target.ReadFolder ? work : file, input.Length, timeout);
                counts[outcome]++;
                if (outcome is FuzzOutcome.Untyped or FuzzOutcome.Hung or FuzzOutcome.Bloated)
                    defects.Add($"{target.Name}: SAFERLHF_FUZZ_SEED={seed} SAFERLHF_FUZZ_INDEX={index} ({kind}, {input.Length} bytes): {outcome}: {detail}");
                if (outcome == FuzzOutcome.Refused) samples.TryAdd(kind.Split('+')[0], detail);
                if (outcome == FuzzOutcome.Hung) break; // the hung reader still runs; stop here.
            }
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        var report = new FuzzReport(target.Name, seed, counts.Values.Sum(), counts, kinds, defects, clock.Elapsed) { SampleRefusals = samples };
        if (Environment.GetEnvironmentVariable("SAFERLHF_FUZZ_REPORT") is { Length: > 0 } reportFile)
        {
            lock (ReportLock)
                File.AppendAllText(reportFile, report.Summary + "; kinds: " +
                                               string.Join(", ", kinds.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key} {k.Value}")) + Environment.NewLine);
        }
        return report;
    }

    private static readonly object ReportLock = new();

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
        foreach (string d in Directory.GetDirectories(from)) CopyTree(d, Path.Combine(to, Path.GetFileName(d)));
    }

    private static (FuzzOutcome, string) RunOne(FuzzTarget target, string path, long inputBytes, TimeSpan timeout)
    {
        long bound = (long)(target.AllocationFactor * inputBytes) + target.AllocationSlackBytes;
        var task = Task.Factory.StartNew(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Exception? error = null;
            try
            {
                target.Read(path);
            }
            catch (Exception e)
            {
                error = e;
            }
            return (Allocated: GC.GetAllocatedBytesForCurrentThread() - before, Error: error);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(timeout)) return (FuzzOutcome.Hung, $"still running after {timeout.TotalSeconds} s");
        var (allocated, error) = task.Result;
        if (error is not null && !target.IsTyped(error))
            return (FuzzOutcome.Untyped, error.ToString());
        if (allocated > bound)
            return (FuzzOutcome.Bloated, $"allocated {allocated} bytes, the bound for {inputBytes} input bytes is {bound}");
        return error is null ? (FuzzOutcome.Accepted, "") : (FuzzOutcome.Refused, error.Message);
    }

    private static int? EnvInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : null;
}
