using System.CommandLine;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf sft|reward|cost|dpo`: one training stage on files, with checkpoints in the run folder,
/// Ctrl-C saving a checkpoint (exit 130), and --resume continuing from the latest checkpoint.</summary>
public static class StageCommands
{
    public static Command Sft() => Create("sft", "Supervised fine-tuning of a LLaMA model on Alpaca-style JSON lines", () => new SftConfig());
    public static Command Reward() => Create("reward", "Train a reward model (helpfulness) on PKU-SafeRLHF pairs", () => new ScoreConfig());
    public static Command Cost() => Create("cost", "Train a cost model (harmfulness) on PKU-SafeRLHF pairs", () => new ScoreConfig());
    public static Command Dpo() => Create("dpo", "Direct preference optimisation of a LLaMA model on PKU-SafeRLHF pairs", () => new DpoConfig());

    private const string StageKeys = ". Config: model (a weight file, Hugging Face folder, checkpoint or run folder), data, tokenizer, chat_template, max_length, seed, checkpoint_every, stop_after_steps, train.*, " +
        "lora.{rank, alpha, targets, quantize} (adapters on a frozen, optionally quantized base instead of full fine-tuning). " +
        ChatTemplates.Help + ".";

    private static Command Create<T>(string stage, string description, Func<T> defaults) where T : StageConfig
    {
        var configOption = CommonOptions.Config();
        var setOption = CommonOptions.Set();
        var outOption = new Option<string?>("--out") { Description = $"Run folder (default: runs/{stage}-<time>)" };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var resumeOption = CommonOptions.Resume();
        var quietOption = CommonOptions.Quiet();
        var command = new Command(stage, description + StageKeys) { configOption, setOption, outOption, deviceOption, threadsOption, resumeOption, quietOption };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            string? resume = parse.GetValue(resumeOption);
            bool quiet = parse.GetValue(quietOption);
            var (outPath, configFile) = CommonOptions.ResolveResume(resume, parse.GetValue(outOption), parse.GetValue(configOption),
                "'model' and 'data'");
            var config = ConfigLoader.Load(defaults(), configFile, parse.GetValue(setOption) ?? []);
            config.Validate();
            var device = DeviceFactory.Create(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption));
            return new StageRun<T>(stage, config, device, quiet).Execute(outPath, resume is not null);
        }));
        return command;
    }

    /// <summary>One stage run: model, data, checkpoints and the training loop.</summary>
    private sealed class StageRun<T>(string stage, T config, Device device, bool quiet) where T : StageConfig
    {
        public int Execute(string? outPath, bool resuming)
        {
            using var weights = StageData.OpenModel(config.Model);
            if (config.Lora is not null && LlamaCheckpoint.HasAdapters(weights))
                throw new CliException($"config: 'lora': {config.Model} already holds LoRA adapters, which this stage trains " +
                                       "(everything else stays frozen); remove 'lora' to continue them");
            using var backbone = StageData.Build(weights, device, config.Lora);
            if (config.MaxLength > backbone.Config.SeqLen)
                throw new CliException($"config: 'max_length' {config.MaxLength} exceeds the model's context of {backbone.Config.SeqLen} tokens");
            var tokenizer = StageData.Tokenizer(config.Tokenizer, weights, backbone.Config);
            int pad = tokenizer.EosId;
            var rng = new Rng(config.Seed);
            // Fresh adapters; the reference policy of DPO is then the model with its adapters switched off.
            config.Lora?.Apply(backbone, rng.Fork());

            Module trainable;
            Action<string> saveModel;
            Func<TrainerState, Action<StepMetrics>, CancellationToken, double> train;
            LlamaModel? reference = null;
            ScoreModel? scoreModel = null;
            var metadata = new Dictionary<string, string> { ["stage"] = stage, [ModelLocator.ChatTemplateKey] = config.ChatTemplate };
            int examples, dropped;
            switch (config)
            {
                case SftConfig:
                {
                    var (data, d) = StageData.Sft(config.Data, tokenizer, config.MaxLength, config.Template());
                    (examples, dropped) = (data.Count, d);
                    trainable = backbone;
                    saveModel = path => LlamaCheckpoint.Save(backbone, path, metadata);
                    train = (state, onStep, cancel) => SftTrainer.Train(backbone, data, config.Train, rng, pad, state, onStep, cancel);
                    break;
                }
                case ScoreConfig score:
                {
                    var (data, d) = StageData.Pairs(config.Data, tokenizer, config.MaxLength, stage, config.Template());
                    (examples, dropped) = (data.Count, d);
                    scoreModel = ScoreModel.Create(backbone, rng);
                    var model = scoreModel;
                    var kind = stage == "cost" ? ScoreTrainer.Kind.Cost : ScoreTrainer.Kind.Reward;
                    trainable = model;
                    var scoreMetadata = new Dictionary<string, string>(metadata) { ["format"] = RlModels.ScoreModelFormat };
                    if (config.Lora is not null) scoreMetadata[LoraConfig.MetadataKey] = config.Lora.ToJson();
                    else if (LlamaCheckpoint.HasAdapters(weights))
                        throw new CliException($"{config.Model} holds LoRA adapters: a score model starts from a model without them " +
                                               "(train the reward or cost model on its base with 'lora')");
                    saveModel = path => StageCheckpoint.SaveModule(model, path, scoreMetadata);
                    train = (state, onStep, cancel) =>
                        ScoreTrainer.Train(model, data, kind, config.Train, rng, pad, state, score.Regularization, onStep, cancel);
                    break;
                }
                case DpoConfig dpo:
                {
                    var (data, d) = StageData.Pairs(config.Data, tokenizer, config.MaxLength, stage, config.Template());
                    (examples, dropped) = (data.Count, d);
                    if (config.Lora is null)
                    {
                        reference = StageData.Build(weights, device);
                        foreach (var (_, p) in reference.NamedParameters()) p.RequiresGrad = false;
                    }
                    var frozen = reference;
                    trainable = backbone;
                    saveModel = path => LlamaCheckpoint.Save(backbone, path, metadata);
                    train = (state, onStep, cancel) =>
                        DpoTrainer.Train(backbone, frozen, data, config.Train, dpo.Beta, rng, pad, state, onStep, cancel);
                    break;
                }
                default:
                    throw new CliException($"unknown stage '{stage}'");
            }
            using var disposeScore = scoreModel is null ? null : new HeadOnly(scoreModel);
            using var disposeReference = reference;

            var run = RunFolder.Create(outPath, stage);
            var state = new TrainerState();
            LoadedCheckpoint? checkpoint = null;
            if (resuming)
            {
                checkpoint = StageCheckpoint.ReadLatest(run.Path, stage);
                if (checkpoint.State.TotalSteps != config.Train.Steps)
                    throw new CliException($"--resume: the checkpoint belongs to a run of {checkpoint.State.TotalSteps} steps, " +
                                           $"the config asks for train.steps = {config.Train.Steps}");
                StageCheckpoint.LoadInto(trainable, checkpoint.ModelPath);
                rng.State = checkpoint.State.RngState;
                StageCheckpoint.TruncateMetrics(run.MetricsPath, checkpoint.State.Step);
            }
            else
            {
                if (StageCheckpoint.Exists(run.Path))
                    throw new CliException($"--out: {run.Path} already holds a checkpoint; continue it with --resume {run.Path} or choose another folder");
                if (File.Exists(run.MetricsPath)) File.Delete(run.MetricsPath);
            }
            run.SaveConfig(config);

            string? lastCheckpoint = checkpoint?.Folder;
            int total = config.Train.Steps;
            using var stopAfter = new CancellationTokenSource();
            state = new TrainerState
            {
                Step = checkpoint?.State.Step ?? 0,
                Losses = checkpoint?.State.Losses.ToList() ?? [],
                OptimizerStep = checkpoint?.State.OptimizerStep ?? 0,
                Moments = checkpoint?.Moments,
                OnCheckpoint = (s, optimizer, interrupted) =>
                {
                    bool stopHere = config.StopAfterSteps > 0 && s.Step >= config.StopAfterSteps && s.Step < total;
                    bool periodic = config.CheckpointEvery > 0 && s.Step % config.CheckpointEvery == 0;
                    if (interrupted && s.Step == 0) return;
                    if (interrupted || periodic || stopHere || s.Step == total)
                        lastCheckpoint = StageCheckpoint.Save(run.Path, stage, s.Step, total, saveModel, optimizer, rng, s.Losses);
                    if (stopHere) stopAfter.Cancel();
                },
            };
            if (!quiet)
                Console.WriteLine($"{stage}: {examples} examples from {config.Data}{(dropped > 0 ? $" ({dropped} dropped)" : "")}, " +
                                  $"{(resuming ? $"resuming at step {state.Step} of" : "")} {total} steps on {device.Name}; run folder {run.Path}");

            bool userCancelled = false;
            try
            {
                RunWithProgress.Execute(quiet, run, (onStep, onMessage, cancel) =>
                {
                    using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancel, stopAfter.Token);
                    try
                    {
                        return train(state, onStep, linked.Token);
                    }
                    finally
                    {
                        userCancelled = cancel.IsCancellationRequested;
                    }
                });
            }
            catch (OperationCanceledException) when (!userCancelled && stopAfter.IsCancellationRequested)
            {
                if (!quiet) Console.WriteLine($"stopped after step {state.Step} of {total}; checkpoint {lastCheckpoint} (continue with --resume {run.Path})");
                else Console.WriteLine(lastCheckpoint);
                return 0;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine(lastCheckpoint is null
                    ? "interrupted before the first step; nothing saved"
                    : $"interrupted at step {state.Step} of {total}; checkpoint {lastCheckpoint} (continue with --resume {run.Path})");
                return 130;
            }

            var result = new Dictionary<string, object?>
            {
                ["stage"] = stage,
                ["steps"] = state.Step,
                ["final_loss"] = state.Losses.Count > 0 ? state.Losses[^1] : null,
                ["checkpoint"] = lastCheckpoint,
                ["model"] = lastCheckpoint is null ? null : Path.Combine(lastCheckpoint, StageCheckpoint.ModelFile),
            };
            run.WriteJson("result.json", result);
            if (quiet) Console.WriteLine(Path.Combine(run.Path, "result.json"));
            else Console.WriteLine($"{stage}: done, {state.Step} steps, last loss {state.Losses[^1]:F4}; model {result["model"]}");
            return 0;
        }
    }

    /// <summary>Disposes a score model's head only (the backbone is disposed by its own owner).</summary>
    private sealed class HeadOnly(ScoreModel model) : IDisposable
    {
        public void Dispose() => model.Head.Dispose();
    }
}
