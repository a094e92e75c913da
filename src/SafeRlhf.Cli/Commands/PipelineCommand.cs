using System.CommandLine;
using System.Text.Json;
using SafeRlhf.Rlhf.Pipeline;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf pipeline`: the full Safe-RLHF pipeline on the built-in task (the default job).</summary>
public static class PipelineCommand
{
    public static Command Create()
    {
        var outOption = new Option<string?>("--out") { Description = "Run folder (default: runs/pipeline-<time>)" };
        var seedOption = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var matmulOption = CommonOptions.MatMulInputs();
        var quietOption = CommonOptions.Quiet();
        var configOption = CommonOptions.Config();
        var setOption = CommonOptions.Set();
        var command = new Command("pipeline", "Run SFT, reward and cost models, PPO, PPO-Lagrangian and reward shaping on the built-in task, then evaluate")
        {
            outOption, seedOption, deviceOption, threadsOption, matmulOption, quietOption, configOption, setOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            var defaults = new PipelineOptions { Seed = parse.GetValue(seedOption) };
            var options = ConfigLoader.Load(defaults, parse.GetValue(configOption), parse.GetValue(setOption) ?? []);
            // The effective config is saved as config.json in the run folder; --verbose also prints it.
            if (parse.GetValue(CliRunner.VerboseOption) && !parse.GetValue(quietOption))
                Console.WriteLine($"effective config:\n{ConfigLoader.Describe(options)}");
            var device = DeviceFactory.Create(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption), parse.GetValue(matmulOption)!);
            var run = RunFolder.Create(parse.GetValue(outOption), "pipeline");
            run.SaveConfig(options);
            var comm = new SafeRlhf.Tensors.Distributed.TimedCommunicator(Distributed.ProcessRanks.Comm);
            var summary = RunWithProgress.Execute(parse.GetValue(quietOption), run, (onStep, onMessage, cancel) =>
                new BuiltInPipeline(options, device) { OnStep = onStep, OnMessage = onMessage, Comm = comm }.Run(cancel));
            run.WriteJson("summary.json", summary);
            Plots.WriteCurves(run, options.Rl.Threshold);
            if (!parse.GetValue(quietOption)) SummaryTable.Print(summary, run.Path);
            else Console.WriteLine(Path.Combine(run.Path, "summary.json"));
            if (comm.WorldSize > 1 && !parse.GetValue(quietOption))
                Console.WriteLine($"data parallel: {comm.WorldSize} ranks ({comm.Transport}); rank 0 spent {comm.Seconds:F1} s of " +
                                  $"{summary.Seconds:F1} s in {comm.Calls} collectives ({100 * comm.Seconds / summary.Seconds:F1} %)");
            return 0;
        }));
        return command;
    }
}
