using System.Globalization;

namespace SafeRlhf.Cli.Selftest;

/// <summary>One selftest check: what ran, at which shape, the largest scaled difference from the native CPU backend
/// (|device − cpu| / (1 + |cpu|), or a count of mismatches), the bound it had to stay under, and a note.</summary>
public sealed record SelftestRow(string Check, string Shape, bool Passed, double Error, double Tolerance, string Note = "")
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{(Passed ? "PASS" : "FAIL"),-4}  {Check,-30} {Shape,-28} {Error,10:G3} ≤ {Tolerance,-8:G3} {Note}");
}

/// <summary>The rows so far, printed as they come, and the final pass/fail table.</summary>
public sealed class SelftestReport(TextWriter output)
{
    private readonly List<SelftestRow> _rows = [];

    public IReadOnlyList<SelftestRow> Rows => _rows;

    public bool AllPassed => _rows.All(r => r.Passed);

    public void Add(SelftestRow row)
    {
        _rows.Add(row);
        output.WriteLine(row.ToString());
        output.Flush();
    }

    /// <summary>Runs one check; an exception is a failed row that names it (the selftest goes on).</summary>
    public void Run(string check, string shape, Func<SelftestRow> body)
    {
        SelftestRow row;
        try { row = body(); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            row = new SelftestRow(check, shape, false, double.NaN, 0, $"{e.GetType().Name}: {e.Message}");
        }
        Add(row);
    }

    public void WriteSummary(string device)
    {
        int failed = _rows.Count(r => !r.Passed);
        output.WriteLine();
        output.WriteLine($"{"result",-4}  {"check",-30} {"shape",-28} {"error",10}   {"bound",-8} note");
        foreach (var r in _rows) output.WriteLine(r.ToString());
        output.WriteLine($"selftest on {device}: {_rows.Count - failed} passed, {failed} failed");
    }

    /// <summary>max |a − b| / (1 + |b|) over two equally long arrays (NaN when one is NaN and the other not).</summary>
    public static double ScaledError(double[] device, double[] cpu)
    {
        if (device.Length != cpu.Length) return double.PositiveInfinity;
        double worst = 0;
        for (int i = 0; i < cpu.Length; i++)
        {
            if (double.IsNaN(device[i]) != double.IsNaN(cpu[i])) return double.NaN;
            if (double.IsNaN(cpu[i])) continue;
            worst = Math.Max(worst, Math.Abs(device[i] - cpu[i]) / (1 + Math.Abs(cpu[i])));
        }
        return worst;
    }
}
