using System.Text.Json;

namespace SafeRlhf.Cli;

/// <summary>Training curves from metrics.jsonl as PNG files in the run's plots/ folder (ScottPlot): one per metric, a line per stage.</summary>
public static class Plots
{
    public static readonly string[] Metrics = ["loss", "accuracy", "reward", "cost", "lambda", "kl", "actor_loss", "reward_critic_loss", "cost_critic_loss"];

    public static string? WriteCurves(RunFolder run)
    {
        if (!run.Writes || !File.Exists(run.MetricsPath)) return null;
        var series = new Dictionary<(string Metric, string Stage), List<(double Step, double Value)>>();
        foreach (var line in File.ReadLines(run.MetricsPath))
        {
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            string stage = root.GetProperty("stage").GetString()!;
            double step = root.GetProperty("step").GetDouble();
            foreach (var metric in Metrics)
                if (root.TryGetProperty(metric, out var v) && v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()))
                {
                    if (!series.TryGetValue((metric, stage), out var list)) series[(metric, stage)] = list = [];
                    list.Add((step, v.GetDouble()));
                }
        }
        var metrics = Metrics.Where(m => series.Keys.Any(k => k.Metric == m)).ToList();
        if (metrics.Count == 0) return null;
        var folder = Path.Combine(run.Path, "plots");
        Directory.CreateDirectory(folder);
        foreach (var metric in metrics)
        {
            var plot = new ScottPlot.Plot();
            plot.Title(metric);
            plot.XLabel("step");
            foreach (var ((_, stage), points) in series.Where(s => s.Key.Metric == metric))
            {
                var line = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
                line.LegendText = stage;
                line.MarkerSize = 0;
            }
            plot.ShowLegend();
            plot.SavePng(Path.Combine(folder, metric + ".png"), 800, 450);
        }
        var path = folder;
        return path;
    }
}
