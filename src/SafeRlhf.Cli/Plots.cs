using System.Text.Json;

namespace SafeRlhf.Cli;

/// <summary>Training curves from metrics.jsonl as PNG files in the run's plots/ folder (ScottPlot): one per metric, a
/// line per stage, the held-out curve (eval_&lt;metric&gt;) beside the training curve, integer step ticks, axis labels,
/// the legend to the right of the data area, and on the cost plot PPO-Lagrangian's threshold as a dashed line.</summary>
public static class Plots
{
    public static readonly string[] Metrics = ["loss", "accuracy", "reward", "cost", "lambda", "kl", "actor_loss", "reward_critic_loss", "cost_critic_loss"];

    /// <summary>The held-out counterpart of a metric in metrics.jsonl.</summary>
    private static string HeldOut(string metric) => "eval_" + metric;

    /// <summary>Writes plots/&lt;metric&gt;.png for each metric in the run's metrics (rank 0 only); returns the folder,
    /// or null when nothing was drawn. <paramref name="costThreshold"/> draws the cost limit on the cost plot.</summary>
    public static string? WriteCurves(RunFolder run, double? costThreshold = null)
    {
        if (!run.Writes || !File.Exists(run.MetricsPath)) return null;
        var series = Read(run.MetricsPath);
        var metrics = Metrics.Where(m => series.Keys.Any(k => k.Metric == m || k.Metric == HeldOut(m))).ToList();
        if (metrics.Count == 0) return null;
        var folder = Path.Combine(run.Path, "plots");
        Directory.CreateDirectory(folder);
        foreach (var metric in metrics)
            Draw(metric, series, metric == "cost" ? costThreshold : null).SavePng(Path.Combine(folder, metric + ".png"), 900, 450);
        return folder;
    }

    /// <summary>The plot of <paramref name="metric"/> from the metrics file at <paramref name="metricsPath"/>, as
    /// <see cref="WriteCurves"/> draws it.</summary>
    public static ScottPlot.Plot Draw(string metricsPath, string metric, double? costThreshold = null) =>
        Draw(metric, Read(metricsPath), metric == "cost" ? costThreshold : null);

    private static Dictionary<(string Metric, string Stage), List<(double Step, double Value)>> Read(string path)
    {
        var wanted = Metrics.Concat(Metrics.Select(HeldOut)).ToArray();
        var series = new Dictionary<(string Metric, string Stage), List<(double Step, double Value)>>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            string stage = root.GetProperty("stage").GetString()!;
            double step = root.GetProperty("step").GetDouble();
            foreach (var metric in wanted)
                if (root.TryGetProperty(metric, out var v) && v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()))
                {
                    if (!series.TryGetValue((metric, stage), out var list)) series[(metric, stage)] = list = [];
                    list.Add((step, v.GetDouble()));
                }
        }
        return series;
    }

    private static ScottPlot.Plot Draw(string metric, Dictionary<(string Metric, string Stage), List<(double Step, double Value)>> series,
        double? threshold)
    {
        var plot = new ScottPlot.Plot();
        plot.Title(metric.Replace('_', ' '));
        plot.XLabel("step");
        plot.YLabel(metric.Replace('_', ' '));
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        foreach (var ((name, stage), points) in series.Where(s => s.Key.Metric == metric || s.Key.Metric == HeldOut(metric)))
        {
            bool heldOut = name != metric;
            var line = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
            line.LegendText = heldOut ? $"{stage} (held-out)" : stage;
            // Held-out points are sparse (every eval_every steps): marked, so that a single one shows.
            line.MarkerSize = heldOut ? 6 : 0;
            if (heldOut) line.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        if (threshold is { } t)
        {
            var limit = plot.Add.HorizontalLine(t);
            limit.LinePattern = ScottPlot.LinePattern.Dashed;
            limit.LegendText = $"threshold ({t:G4})";
        }
        plot.ShowLegend(ScottPlot.Edge.Right);
        return plot;
    }
}
