using SafeRlhf.Rlhf.Training;
using System.Runtime.InteropServices;
using Spectre.Console;

namespace SafeRlhf.Cli;

/// <summary>Runs a training job with a live progress bar per stage (ETA and the latest loss, reward, cost and λ),
/// logging every step to the run's metrics.jsonl. Ctrl-C (SIGINT) and SIGTERM (what kill, Docker, Slurm and Kubernetes
/// send) cancel the job cleanly: the job sees its cancellation token set between steps. A SIGINT sent by another process (`kill -INT`) is handled the same way, unless
/// the process was started with SIGINT ignored (as shells start background jobs), which the runtime respects.</summary>
public static class RunWithProgress
{
    public delegate T Job<T>(Action<StepMetrics> onStep, Action<string> onMessage, CancellationToken cancel);

    /// <param name="onSignal">told which signal (SIGINT or SIGTERM) cancelled the job, before the job sees it.</param>
    public static T Execute<T>(bool quiet, RunFolder run, Job<T> job, Action<PosixSignal>? onSignal = null)
    {
        using var cancel = new CancellationTokenSource();
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            onSignal?.Invoke(context.Signal);
            cancel.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        // Ranks of an MPI job may see a terminal that mpirun forwards line by line: they print plain lines too.
        if (quiet || Console.IsOutputRedirected || Distributed.Communicators.LaunchedWorldSize(Environment.GetEnvironmentVariable) > 1)
        {
            return job(m =>
            {
                run.AppendMetrics(m);
                if (!quiet && (m.Step == m.TotalSteps || m.Step % 10 == 0)) Console.WriteLine($"{m.Stage,-15} {m.Step,5}/{m.TotalSteps}  {Describe(m)}");
            }, message => { if (!quiet) Console.WriteLine(message); }, cancel.Token);
        }
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var bars = new StageBars((stage, steps) => ctx.AddTask(stage, maxValue: steps));
                try
                {
                    result = job(m =>
                    {
                        run.AppendMetrics(m);
                        bars.Show(m, Describe(m));
                    }, message => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]"), cancel.Token);
                }
                finally
                {
                    bars.StopAll();
                }
            });
        return result;
    }

    /// <summary>One progress bar per stage, described by its step counter ("12/100") and latest metrics. A stage's
    /// bar (and its elapsed-time column) stops at its last step, when the next stage starts and when the job ends.</summary>
    public sealed class StageBars(Func<string, int, ProgressTask> add)
    {
        private readonly Dictionary<string, ProgressTask> _tasks = [];

        public void Show(StepMetrics m, string metrics)
        {
            if (!_tasks.TryGetValue(m.Stage, out var task))
            {
                StopAll();
                _tasks[m.Stage] = task = add(m.Stage, m.TotalSteps);
            }
            task.Value = m.Step;
            task.Description = $"{m.Stage,-15} {m.Step,5}/{m.TotalSteps,-5} {Markup.Escape(metrics)}";
            if (m.Step >= m.TotalSteps) task.StopTask();
        }

        public void StopAll()
        {
            foreach (var task in _tasks.Values)
                if (task.StopTime is null) task.StopTask();
        }
    }

    private static readonly System.Diagnostics.Stopwatch s_clock = System.Diagnostics.Stopwatch.StartNew();
    private static readonly Dictionary<string, (double Seconds, int Step)> s_lastStep = [];

    private static string Describe(StepMetrics m)
    {
        string[] keys = ["loss", "accuracy", "eval_loss", "eval_accuracy", "reward", "cost", "lambda", "kl"];
        var text = string.Join("  ", keys.Where(m.Values.ContainsKey).Select(k => $"{k} {m.Values[k]:F3}"));
        // Tokens/s of the last step: tokens processed (forward and backward) over the time since the previous step.
        double now = s_clock.Elapsed.TotalSeconds;
        if (m.Values.TryGetValue("tokens", out double tokens) && s_lastStep.TryGetValue(m.Stage, out var last) && last.Step == m.Step - 1 && now > last.Seconds)
            text += $"  {tokens / (now - last.Seconds):F0} tok/s";
        s_lastStep[m.Stage] = (now, m.Step);
        return text;
    }
}
