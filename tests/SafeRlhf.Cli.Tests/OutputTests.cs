using SafeRlhf.Rlhf.Training;
using Spectre.Console;

namespace SafeRlhf.Cli.Tests;

/// <summary>What the commands print: the effective config only with --verbose, whole lines when output is redirected,
/// and progress bars with step counters whose timers stop when their stage is done.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed class OutputTests
{
    [Fact]
    public void PipelineEchoesItsConfigOnlyWithVerbose()
    {
        // An unknown device fails after the config would be echoed and before any training.
        var plain = CliHarness.Run("pipeline", "--device", "no-such-device", "--out", Path.Combine(Path.GetTempPath(), "saferlhf-never-" + Guid.NewGuid().ToString("N")));
        Assert.NotEqual(0, plain.Code);
        Assert.DoesNotContain("effective config", plain.Out);
        var verbose = CliHarness.Run("pipeline", "--device", "no-such-device", "--verbose", "--out", Path.Combine(Path.GetTempPath(), "saferlhf-never-" + Guid.NewGuid().ToString("N")));
        Assert.NotEqual(0, verbose.Code);
        Assert.Contains("effective config", verbose.Out);
        Assert.Contains("\"seed\"", verbose.Out);
    }

    [Fact]
    public void RedirectedOutputIsNotWrapped()
    {
        Assert.True(Console.IsOutputRedirected, "the test runner redirects standard output");
        string line = "policy A: " + new string('a', 150) + "  vs  policy B: " + new string('b', 150);
        using var writer = new StringWriter();
        var console = CliConsole.Create(writer);
        console.MarkupLine(Markup.Escape(line));
        var table = new Table().AddColumns("name", "value");
        table.AddRow(new string('x', 120), new string('y', 120));
        console.Write(table);
        var lines = writer.ToString().Split('\n');
        Assert.Contains(line, lines.Select(l => l.TrimEnd('\r')));
        // The table row is one line holding both cells whole: a wrapped table would split them over several rows.
        Assert.Single(lines, l => l.Contains(new string('x', 120)) && l.Contains(new string('y', 120)));
    }

    [Fact]
    public void ProgressBarsCountStepsAndStopTheTimerOfAFinishedStage()
    {
        var clock = new ManualClock();
        var tasks = new List<ProgressTask>();
        var bars = new RunWithProgress.StageBars((stage, steps) =>
        {
            var task = new ProgressTask(tasks.Count, stage, steps, autoStart: true, clock);
            tasks.Add(task);
            return task;
        });
        StepMetrics Step(string stage, int step, int total) => new(stage, step, total, new Dictionary<string, double> { ["loss"] = 1.5 });

        bars.Show(Step("sft", 1, 3), "loss 1.500");
        Assert.Contains("1/3", tasks[0].Description);
        clock.Advance(TimeSpan.FromSeconds(5));
        bars.Show(Step("sft", 3, 3), "loss 1.500");
        Assert.Contains("3/3", tasks[0].Description);
        var sftElapsed = tasks[0].ElapsedTime;
        clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(sftElapsed, tasks[0].ElapsedTime);                 // finished: its timer no longer runs

        // A stage cut short (stop_after_steps) stops when the next stage starts; the running one keeps counting.
        bars.Show(Step("reward", 2, 10), "loss 0.700");
        clock.Advance(TimeSpan.FromSeconds(7));
        bars.Show(Step("cost", 1, 10), "loss 0.700");
        var rewardElapsed = tasks[1].ElapsedTime;
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(rewardElapsed, tasks[1].ElapsedTime);
        Assert.NotEqual(tasks[2].ElapsedTime, rewardElapsed);
        bars.StopAll();
        var costElapsed = tasks[2].ElapsedTime;
        clock.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(costElapsed, tasks[2].ElapsedTime);
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        public void Advance(TimeSpan by) => _now += by;
        public override DateTimeOffset GetUtcNow() => _now;
    }
}

/// <summary>How a plot is drawn: axis labels, integer step ticks, the legend outside the data, held-out curves and
/// PPO-Lagrangian's threshold on the cost plot.</summary>
public sealed class PlotTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "saferlhf-plot-" + Guid.NewGuid().ToString("N") + ".jsonl");

    public void Dispose() => File.Delete(_path);

    [Fact]
    public void PlotsCarryLabelsIntegerTicksOutsideLegendHeldOutCurvesAndTheThreshold()
    {
        File.WriteAllLines(_path,
        [
            """{"stage":"sft","step":1,"loss":2.5}""",
            """{"stage":"sft","step":2,"loss":2.25,"eval_loss":2.4}""",
            """{"stage":"ppo_lag","step":1,"cost":0.5,"reward":0.1}""",
            """{"stage":"ppo_lag","step":2,"cost":-0.25,"reward":0.2}""",
        ]);
        var loss = Plots.Draw(_path, "loss", costThreshold: -1);
        Assert.Equal("loss", loss.Axes.Left.Label.Text);
        Assert.Equal("step", loss.Axes.Bottom.Label.Text);
        Assert.True(Assert.IsType<ScottPlot.TickGenerators.NumericAutomatic>(loss.Axes.Bottom.TickGenerator).IntegerTicksOnly);
        var lines = loss.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().ToList();
        Assert.Equal(["sft", "sft (held-out)"], lines.Select(l => l.LegendText).Order());
        Assert.Empty(loss.GetPlottables().OfType<ScottPlot.Plottables.HorizontalLine>());   // the threshold is the cost plot's
        // The legend sits in a panel beside the data area, not over it.
        Assert.False(loss.Legend.IsVisible);
        Assert.Single(loss.Axes.GetPanels().OfType<ScottPlot.Panels.LegendPanel>());

        var cost = Plots.Draw(_path, "cost", costThreshold: -1);
        var threshold = Assert.Single(cost.GetPlottables().OfType<ScottPlot.Plottables.HorizontalLine>());
        Assert.Equal(-1, threshold.Y);
        Assert.StartsWith("threshold", threshold.LegendText);
        Assert.Empty(Plots.Draw(_path, "cost").GetPlottables().OfType<ScottPlot.Plottables.HorizontalLine>());
    }
}
