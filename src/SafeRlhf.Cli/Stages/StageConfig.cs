using SafeRlhf.Rlhf.Training;

namespace SafeRlhf.Cli.Stages;

/// <summary>Settings shared by the single-stage commands (sft, reward, cost, dpo); keys as in the run's config.json.</summary>
public abstract record StageConfig
{
    /// <summary>Model to start from: llama2.c .bin, .gguf, Hugging Face folder or saferlhf .safetensors checkpoint.</summary>
    public string Model { get; init; } = "";
    /// <summary>Tokenizer file; null = the model's own (as for `saferlhf generate`).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Training data: Alpaca JSON lines for sft, PKU-SafeRLHF JSON lines for reward, cost and dpo, or HH-RLHF
    /// chosen/rejected lines for reward and dpo (detected by the first row).</summary>
    public string Data { get; init; } = "";
    /// <summary>The chat template around every prompt: {prompt} is replaced (saved in config.json and in each checkpoint).</summary>
    public string ChatTemplate { get; init; } = Rlhf.Data.ChatTemplate.DefaultText;
    /// <summary>Most tokens per sequence (prompt template + response + EOS); longer sequences are truncated.</summary>
    public int MaxLength { get; init; } = 512;
    public ulong Seed { get; init; } = 1;
    /// <summary>Save a checkpoint every this many steps (default 50; 0 = only at the end, on interruption and at
    /// stop_after_steps).</summary>
    public int CheckpointEvery { get; init; } = Rlhf.Checkpoints.CheckpointSchedule.DefaultEvery;
    /// <summary>Stop with a checkpoint once the run reaches this many steps in all (0 = run to train.steps); continue
    /// with --resume (which does not stop there again).</summary>
    public int StopAfterSteps { get; init; }
    /// <summary>Fraction of the examples held out of training and evaluated by sft, reward, cost and dpo (eval_loss, eval_accuracy in metrics.jsonl
    /// and the plots): floor(examples × eval_split), chosen by the seed; default 0.1, so data of fewer than 10 examples
    /// trains whole; 0 disables.</summary>
    public double EvalSplit { get; init; } = 0.1;
    /// <summary>Evaluate the held-out split every this many steps (default 50) and at the last step; 0 = at the last step only.</summary>
    public int EvalEvery { get; init; } = 50;
    public TrainOptions Train { get; init; } = new();
    /// <summary>Train LoRA adapters on a frozen (optionally quantized) base instead of every weight; null = full fine-tuning.</summary>
    public LoraConfig? Lora { get; init; }

    /// <summary>This config with every file path made absolute (against the current folder), so that config.json
    /// names the same files wherever the run is resumed from.</summary>
    public StageConfig WithAbsolutePaths() =>
        this with { Model = ConfigPaths.Absolute(Model)!, Tokenizer = ConfigPaths.Absolute(Tokenizer), Data = ConfigPaths.Absolute(Data)! };

    /// <summary>Throws <see cref="CliException"/> naming the first invalid value.</summary>
    /// <summary>The checked <see cref="ChatTemplate"/>.</summary>
    public Rlhf.Data.ChatTemplate Template() => ChatTemplates.Parse(ChatTemplate, "config: 'chat_template'");

    public virtual void Validate()
    {
        Lora?.Validate("lora");
        Template();
        if (string.IsNullOrWhiteSpace(Model)) throw new CliException("config: 'model' is required (path of the model to train)");
        if (string.IsNullOrWhiteSpace(Data)) throw new CliException("config: 'data' is required (path of the training data)");
        if (MaxLength < 2) throw new CliException($"config: 'max_length' must be ≥ 2, got {MaxLength}");
        if (CheckpointEvery < 0) throw new CliException($"config: 'checkpoint_every' must be ≥ 0, got {CheckpointEvery}");
        if (!(EvalSplit >= 0 && EvalSplit < 1)) throw new CliException($"config: 'eval_split' must be in [0, 1), got {EvalSplit}");
        if (EvalEvery < 0) throw new CliException($"config: 'eval_every' must be ≥ 0, got {EvalEvery}");
        if (StopAfterSteps < 0) throw new CliException($"config: 'stop_after_steps' must be ≥ 0, got {StopAfterSteps}");
        var t = Train;
        if (t is null) throw new CliException("config: 'train' must be an object");
        if (t.Steps <= 0) throw new CliException($"config: 'train.steps' must be > 0, got {t.Steps}");
        if (t.BatchSize <= 0) throw new CliException($"config: 'train.batch_size' must be > 0, got {t.BatchSize}");
        if (!(t.Lr > 0) || !double.IsFinite(t.Lr)) throw new CliException($"config: 'train.lr' must be a positive number, got {t.Lr}");
        if (!(t.WeightDecay >= 0) || !double.IsFinite(t.WeightDecay)) throw new CliException($"config: 'train.weight_decay' must be ≥ 0, got {t.WeightDecay}");
        if (!(t.WarmupRatio >= 0 && t.WarmupRatio <= 1)) throw new CliException($"config: 'train.warmup_ratio' must be in [0, 1], got {t.WarmupRatio}");
        if (!(t.ClipNorm > 0)) throw new CliException($"config: 'train.clip_norm' must be > 0, got {t.ClipNorm}");
        if (t.GradientAccumulation < 1) throw new CliException($"config: 'train.gradient_accumulation' must be ≥ 1, got {t.GradientAccumulation}");
    }
}

/// <summary>`saferlhf sft`: supervised fine-tuning on Alpaca-style rows.</summary>
public sealed record SftConfig : StageConfig;

/// <summary>`saferlhf reward` / `saferlhf cost`: a score model (backbone + scalar head) on PKU-SafeRLHF pairs.</summary>
public sealed record ScoreConfig : StageConfig
{
    /// <summary>Weight of the squared-score regulariser.</summary>
    public double Regularization { get; init; } = 0.001;

    public override void Validate()
    {
        base.Validate();
        if (!(Regularization >= 0) || !double.IsFinite(Regularization))
            throw new CliException($"config: 'regularization' must be ≥ 0, got {Regularization}");
    }
}

/// <summary>`saferlhf dpo`: direct preference optimisation on the helpfulness labels of PKU-SafeRLHF pairs.</summary>
public sealed record DpoConfig : StageConfig
{
    /// <summary>DPO temperature β.</summary>
    public double Beta { get; init; } = 0.1;

    public override void Validate()
    {
        base.Validate();
        if (!(Beta > 0) || !double.IsFinite(Beta)) throw new CliException($"config: 'beta' must be a positive number, got {Beta}");
    }
}

/// <summary>Paths of a config made absolute when a run starts.</summary>
public static class ConfigPaths
{
    /// <summary>The full path of <paramref name="path"/>; null and empty stay as they are (the validation names them).</summary>
    public static string? Absolute(string? path) => string.IsNullOrWhiteSpace(path) ? path : Path.GetFullPath(path);
}
