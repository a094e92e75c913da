using System.CommandLine;
using SafeRlhf.Cli.Commands;

namespace SafeRlhf.Cli;

/// <summary>The `saferlhf` driver: the composition root and the only place that picks a backend.</summary>
public static class Program
{
    /// <summary>Parses and runs one command line; returns the exit code (see <see cref="CliRunner"/>).</summary>
    public static int Main(string[] args)
    {
        var root = new RootCommand("saferlhf: safe reinforcement learning from human feedback on LLaMA models")
        {
            InfoCommand.Create(),
            PipelineCommand.Create(),
            BenchCommand.Create(),
            BenchCommCommand.Create(),
            SelftestCommand.Create(),
            ProfileCommand.Create(),
            PlanCommand.Create(),
            GenerateCommand.Create(),
            BenchModelCommand.Create(),
            ExportCommand.Create(),
            InitCommand.Create(),
            StageCommands.Sft(),
            StageCommands.Reward(),
            StageCommands.Cost(),
            StageCommands.Dpo(),
            RlCommands.Ppo(),
            RlCommands.PpoLag(),
            RlCommands.RewardShaping(),
            RlCommands.Eval(),
            RlCommands.Arena(),
        };
        root.Options.Add(CliRunner.VerboseOption);
        bool verbose = args.Contains("--verbose");
        // In a data-parallel job only rank 0 prints; the other ranks report errors only.
        var stdout = Console.Out;
        if (!Distributed.ProcessRanks.IsWriter) Console.SetOut(TextWriter.Null);
        try
        {
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0) return ReportParseErrors(parse);
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex)
        {
            return CliRunner.Report(ex, verbose, "saferlhf");
        }
        finally
        {
            Distributed.ProcessRanks.Shutdown();
            Console.SetOut(stdout);
        }
    }

    /// <summary>A bad command line: one line naming every problem and where the options are listed.</summary>
    private static int ReportParseErrors(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        string name = command is RootCommand ? "saferlhf" : $"saferlhf {command.Name}";
        string problems = string.Join("; ", parse.Errors.Select(e => e.Message.Trim().TrimEnd('.')));
        Console.Error.WriteLine($"error: {problems} (see '{name} --help')");
        return CliRunner.BadInput;
    }
}
