using System.CommandLine;
using SafeRlhf.Cli.Commands;

namespace SafeRlhf.Cli;

/// <summary>The `saferlhf` driver: the composition root and the only place that picks a backend.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("saferlhf: safe reinforcement learning from human feedback on LLaMA models")
        {
            InfoCommand.Create(),
            PipelineCommand.Create(),
            BenchCommand.Create(),
            ProfileCommand.Create(),
            PlanCommand.Create(),
            GenerateCommand.Create(),
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
        return root.Parse(args).Invoke();
    }
}
