using SafeRlhf.Cli.Distributed;
using System.CommandLine;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Formats;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Llama.Tokenizers;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Checkpoints;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf sft|reward|cost|dpo`: one training stage on files, with checkpoints in the run folder,
/// Ctrl-C or SIGTERM saving a checkpoint (exit 130 or 143), and --resume continuing from the latest checkpoint
/// (<see cref="TrainingSession"/>).</summary>
public static class StageCommands
{
    public static Command Sft() => Create("sft", "Supervised fine-tuning of a LLaMA model on Alpaca-style JSON lines", () => new SftConfig());
    public static Command Reward() => Create("reward", "Train a reward model (helpfulness) on PKU-SafeRLHF or HH-RLHF (chosen/rejected) pairs", () => new ScoreConfig());
    public static Command Cost() => Create("cost", "Train a cost model (harmfulness) on PKU-SafeRLHF pairs (HH-RLHF has no safety labels and is refused)", () => new ScoreConfig());
    public static Command Dpo() => Create("dpo", "Direct preference optimisation of a LLaMA model on PKU-SafeRLHF or HH-RLHF (chosen/rejected) pairs", () => new DpoConfig());

    private const string StageKeys = ". Config: model (a weight file, Hugging Face folder, checkpoint or run folder), data, tokenizer, chat_template, max_length, seed, checkpoint_every, stop_after_steps, train.*, " +
        "lora.{rank, alpha, targets, quantize} (adapters on a frozen, optionally quantized base instead of full fine-tuning; " +
        "a LoRA checkpoint holds the adapters and names its base by path, size and SHA-256, which must stay in place). " +
        "eval_split (default 0.1: that fraction of the examples, chosen by the seed, is held out and evaluated every eval_every steps, default 50, " +
        "and at the end: eval_loss, eval_accuracy in metrics.jsonl and plots/; 0 disables). " +
        "A checkpoint is saved every checkpoint_every steps (default 50), at stop_after_steps (once), at the end and on Ctrl-C or SIGTERM; " +
        "--resume DIR continues it from any folder, and --resume DIR --set train.steps=N extends a finished run. " + ChatTemplates.Help + ".";

    private static Command Create<T>(string stage, string description, Func<T> defaults) where T : StageConfig
    {
        var configOption = CommonOptions.Config();
        var setOption = CommonOptions.Set();
        var outOption = new Option<string?>("--out") { Description = $"Run folder (default: runs/{stage}-<time>)" };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var matmulOption = CommonOptions.MatMulInputs();
        var resumeOption = CommonOptions.Resume();
        var quietOption = CommonOptions.Quiet();
        var command = new Command(stage, description + StageKeys)
        {
            configOption, setOption, outOption, deviceOption, threadsOption, matmulOption, resumeOption, quietOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            string? resume = parse.GetValue(resumeOption);
            bool quiet = parse.GetValue(quietOption);
            var (outPath, configFile) = CommonOptions.ResolveResume(resume, parse.GetValue(outOption), parse.GetValue(configOption),
                "'model' and 'data'");
            var config = (T)ConfigLoader.Load(defaults(), configFile, parse.GetValue(setOption) ?? []).WithAbsolutePaths();
            config.Validate();
            var device = DeviceFactory.Create(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption), parse.GetValue(matmulOption)!);
            return new StageRun<T>(stage, config, device, quiet).Execute(outPath, resume is not null);
        }));
        return command;
    }

    /// <summary>What one stage trains and how: the module whose weights a checkpoint holds, how they are saved, and
    /// the trainer's run on a <see cref="TrainerState"/>.</summary>
    private sealed record StageJob(Module Trainable, Action<string> SaveModel,
        Func<TrainerState, Action<StepMetrics>, CancellationToken, double> Train, int Examples, int Dropped, int HeldOut);

    /// <summary>One stage run: model, data, then the shared session around the training loop.</summary>
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
            string tokenizerFile = StageData.TokenizerSource(config.Tokenizer, weights, backbone.Config);
            var tokenizer = StageData.Tokenizer(config.Tokenizer, weights, backbone.Config);
            var rng = new Rng(config.Seed);
            // Fresh adapters; the reference policy of DPO is then the model with its adapters switched off.
            config.Lora?.Apply(backbone, rng.Fork());
            using var reference = stage == "dpo" && config.Lora is null ? Frozen(StageData.Build(weights, device)) : null;
            var ranks = ProcessRanks.Training(config.Train.ShardOptimizerState);
            // A model with adapters is saved as its adapters and the reference of the base they belong to.
            var loraBase = SelfContained.BaseOf(weights, config.Lora);
            var job = CreateJob(weights, backbone, reference, tokenizer, rng, ranks, loraBase);
            using var disposeScore = job.Trainable is ScoreModel score ? new HeadOnly(score) : null;

            var session = new TrainingSession(stage, RunFolder.Create(outPath, stage),
                new CheckpointSettings(config.CheckpointEvery, config.StopAfterSteps, config.Train.Steps, "train.steps"), rng, quiet, ranks);
            session.Open(resuming, [(RunCheckpoints.ModelFile, job.Trainable)]);
            if (job.Trainable is LlamaModel) SelfContained.CheckResumedBase(session, loraBase);
            session.Run.SaveConfig(config);
            var extras = SelfContained.Files(stage, tokenizerFile, backbone.Config, config.Lora, loraBase);
            using var stopAfter = new CancellationTokenSource();
            var state = session.NewState([new CheckpointModel(RunCheckpoints.ModelFile, job.SaveModel)], extras, stopAfter);
            if (!quiet)
            {
                Console.WriteLine(SelfContained.Summary(stage, job.Trainable, config.Lora));
                string held = job.HeldOut > 0 ? $", {job.HeldOut} held out for evaluation" : "";
                Console.WriteLine($"{stage}: {job.Examples} examples from {config.Data}{(job.Dropped > 0 ? $" ({job.Dropped} dropped)" : "")}{held}, " +
                                  $"{session.ResumeNote}{config.Train.Steps} steps on {device.Name}; run folder {session.Run.Path}");
            }
            if (session.Train(state, stopAfter, job.Train) is { } code) return code;
            return Finish(session, state);
        }

        private StageJob CreateJob(WeightFile weights, LlamaModel backbone, LlamaModel? reference, ITextTokenizer tokenizer, Rng rng,
            TrainingRanks ranks, LoraBase? loraBase)
        {
            int pad = tokenizer.EosId;
            var metadata = new Dictionary<string, string> { ["stage"] = stage, [ModelLocator.ChatTemplateKey] = config.ChatTemplate };
            switch (config)
            {
                case SftConfig:
                {
                    var (all, dropped) = StageData.Sft(config.Data, tokenizer, config.MaxLength, config.Template());
                    var (data, heldOut) = HeldOut.Split(all, config.EvalSplit, config.Seed);
                    var eval = Evaluation(heldOut, () => new Dictionary<string, double>
                    {
                        ["eval_loss"] = SftTrainer.Evaluate(backbone, heldOut, pad, config.Train.BatchSize),
                    });
                    return new StageJob(backbone, path => LlamaCheckpoint.Save(backbone, path, metadata, loraBase),
                        (state, onStep, cancel) => SftTrainer.Train(backbone, data, config.Train, rng, pad, state, eval(onStep), cancel, ranks),
                        data.Count, dropped, heldOut.Count);
                }
                case ScoreConfig score:
                {
                    var (all, dropped) = StageData.Pairs(config.Data, tokenizer, config.MaxLength, stage, config.Template());
                    var (data, heldOut) = HeldOut.Split(all, config.EvalSplit, config.Seed);
                    var model = ScoreModel.Create(backbone, rng);
                    var kind = stage == "cost" ? ScoreTrainer.Kind.Cost : ScoreTrainer.Kind.Reward;
                    var scoreMetadata = new Dictionary<string, string>(metadata) { ["format"] = RlModels.ScoreModelFormat };
                    if (config.Lora is not null)
                    {
                        scoreMetadata[LoraConfig.MetadataKey] = config.Lora.ToJson();
                        scoreMetadata["base_model"] = config.Model;   // the file holds the adapters and head only
                    }
                    else if (LlamaCheckpoint.HasAdapters(weights))
                        throw new CliException($"{config.Model} holds LoRA adapters: a score model starts from a model without them " +
                                               "(train the reward or cost model on its base with 'lora')");
                    var eval = Evaluation(heldOut, () =>
                    {
                        var (loss, accuracy, sign) = ScoreTrainer.EvaluateWithLoss(model, heldOut, kind, pad, score.Regularization,
                            config.Train.ScoreLoss, config.Train.BatchSize);
                        var values = new Dictionary<string, double> { ["eval_loss"] = loss, ["eval_accuracy"] = accuracy };
                        if (kind == ScoreTrainer.Kind.Cost) values["eval_sign_accuracy"] = sign;
                        return values;
                    });
                    return new StageJob(model, path => ModuleFiles.Save(model, path, scoreMetadata),
                        (state, onStep, cancel) => ScoreTrainer.Train(model, data, kind, config.Train, rng, pad, state, score.Regularization, eval(onStep), cancel, ranks),
                        data.Count, dropped, heldOut.Count);
                }
                case DpoConfig dpo:
                {
                    var (all, dropped) = StageData.Pairs(config.Data, tokenizer, config.MaxLength, stage, config.Template());
                    var (data, heldOut) = HeldOut.Split(all, config.EvalSplit, config.Seed);
                    var eval = Evaluation(heldOut, () =>
                    {
                        var (loss, accuracy) = DpoTrainer.Evaluate(backbone, reference, heldOut, dpo.Beta, pad, config.Train.BatchSize);
                        return new Dictionary<string, double> { ["eval_loss"] = loss, ["eval_accuracy"] = accuracy };
                    });
                    return new StageJob(backbone, path => LlamaCheckpoint.Save(backbone, path, metadata, loraBase),
                        (state, onStep, cancel) => DpoTrainer.Train(backbone, reference, data, config.Train, dpo.Beta, rng, pad, state, eval(onStep), cancel, ranks),
                        data.Count, dropped, heldOut.Count);
                }
                default:
                    throw new CliException($"unknown stage '{stage}'");
            }
        }

        /// <summary>Adds held-out metrics to the step metrics on eval_every's schedule; passes them through when nothing is held out.</summary>
        private Func<Action<StepMetrics>, Action<StepMetrics>> Evaluation<TItem>(List<TItem> heldOut, Func<IReadOnlyDictionary<string, double>> evaluate) =>
            heldOut.Count == 0 ? onStep => onStep : new HeldOutEvaluation(config.EvalEvery, evaluate).Around;

        private int Finish(TrainingSession session, TrainerState state)
        {
            string? last = session.LastCheckpoint;
            var result = new Dictionary<string, object?>
            {
                ["stage"] = stage,
                ["steps"] = state.Step,
                ["final_loss"] = state.Losses.Count > 0 ? state.Losses[^1] : null,
                ["checkpoint"] = last,
                ["model"] = last is null ? null : Path.Combine(last, RunCheckpoints.ModelFile),
            };
            session.Run.WriteJson("result.json", result);
            if (quiet) Console.WriteLine(Path.Combine(session.Run.Path, "result.json"));
            else Console.WriteLine($"{stage}: done, {state.Step} steps, last loss {state.Losses[^1]:F4}; model {result["model"]}");
            return 0;
        }

        private static LlamaModel Frozen(LlamaModel model)
        {
            foreach (var (_, p) in model.NamedParameters()) p.RequiresGrad = false;
            return model;
        }
    }

    /// <summary>Disposes a score model's head only (the backbone is disposed by its own owner).</summary>
    private sealed class HeadOnly(ScoreModel model) : IDisposable
    {
        public void Dispose() => model.Head.Dispose();
    }
}
