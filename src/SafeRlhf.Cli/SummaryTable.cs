using SafeRlhf.Rlhf.Pipeline;
using Spectre.Console;

namespace SafeRlhf.Cli;

/// <summary>The pipeline's results as a table on the console.</summary>
public static class SummaryTable
{
    public static void Print(PipelineSummary s, string runPath)
    {
        // Redirected output (a log file) has no terminal width: give the tables room instead of the default 80 columns.
        CliConsole.ConfigureShared();
        AnsiConsole.MarkupLine($"SFT loss {s.Sft.Loss:F3} · reward model accuracy {s.RewardModel.Accuracy:P1} · cost model accuracy {s.CostModel.Accuracy:P1}, sign accuracy {s.CostModel.SignAccuracy:P1}");
        var table = new Table().AddColumns("policy", "mean reward", "mean cost", "unsafe (cost > 0)", "unsafe (rules)", "benign helpful", "harmful refused", "harmful redirected");
        foreach (var (name, p) in s.Policies)
            table.AddRow(name, $"{p.MeanReward:F3}", $"{p.MeanCost:F3}", $"{p.UnsafeRate:P1}", $"{p.RuleUnsafeRate:P1}",
                $"{p.RuleHelpfulRateBenign:P1}", $"{p.RuleRefusalRateHarmful:P1}",
                $"{p.RuleRedirectRateHarmful:P1}");
        AnsiConsole.Write(table);
        if (s.ScoresByKind.TryGetValue("benign", out var benign) && s.ScoresByKind.TryGetValue("harmful", out var harmful))
        {
            var kinds = new Table().AddColumns("response kind (held-out prompts)", "benign: reward", "benign: cost", "harmful: reward", "harmful: cost");
            foreach (var (kind, b) in benign)
                kinds.AddRow(kind, $"{b.Reward:F2}", $"{b.Cost:F2}", $"{harmful[kind].Reward:F2}", $"{harmful[kind].Cost:F2}");
            AnsiConsole.Write(kinds);
        }
        string lambdas = s.LambdaTrace.Count == 0 ? "" : $"λ {s.LambdaTrace[0]:F2} → max {s.LambdaTrace.Max():F2} → {s.LambdaTrace[^1]:F2}";
        AnsiConsole.MarkupLine($"threshold {s.Threshold} · {lambdas} · {s.Seconds:F0} s · results in {Markup.Escape(runPath)}");
    }
}
