using SafeRlhf.Rlhf.Training;

namespace SafeRlhf.Cli.Stages;

/// <summary>Settings shared by the commands that score policies with a reward and a cost model (ppo, ppo-lag,
/// reward-shaping, eval, arena); keys as in the run's config.json.</summary>
public abstract record RlInputsConfig
{
    /// <summary>Reward model written by `saferlhf reward`: its model.safetensors, a checkpoint folder or the run folder.</summary>
    public string RewardModel { get; init; } = "";
    /// <summary>Cost model written by `saferlhf cost`: its model.safetensors, a checkpoint folder or the run folder.</summary>
    public string CostModel { get; init; } = "";
    /// <summary>The model the reward and cost models were trained from (their architecture); null = the policy.</summary>
    public string? ScoreBase { get; init; }
    /// <summary>Tokenizer file; null = the policy's own (as for `saferlhf generate`).</summary>
    public string? Tokenizer { get; init; }
    /// <summary>Prompts: PKU-SafeRLHF JSON lines; the distinct prompts are used in the Safe-RLHF template.</summary>
    public string Data { get; init; } = "";
    /// <summary>The chat template around every prompt: {prompt} is replaced (saved in config.json and in each checkpoint).</summary>
    public string ChatTemplate { get; init; } = Rlhf.Data.ChatTemplate.DefaultText;
    /// <summary>Most tokens of a templated prompt (with BOS); longer prompts are skipped.</summary>
    public int MaxPromptLength { get; init; } = 128;
    public ulong Seed { get; init; } = 1;
    /// <summary>How the rollouts' KV cache stores keys and values: "f32" (default, as computed) or "bf16" (rounded to
    /// BF16: half the cache memory; devices cuda, ilgpu-cpu and reference, see <see cref="Llama.KvCacheType"/>).</summary>
    public string KvCache { get; init; } = "f32";

    /// <summary>The checked <see cref="KvCache"/>.</summary>
    public Llama.KvCacheType KvCacheStorage() => CommonOptions.ParseKvCache(KvCache, "config: 'kv_cache'");

    /// <summary>The checked <see cref="ChatTemplate"/>.</summary>
    public Rlhf.Data.ChatTemplate Template() => ChatTemplates.Parse(ChatTemplate, "config: 'chat_template'");

    /// <summary>Throws <see cref="CliException"/> naming the first invalid value.</summary>
    public virtual void Validate()
    {
        Template();
        KvCacheStorage();
        if (string.IsNullOrWhiteSpace(RewardModel))
            throw new CliException("config: 'reward_model' is required (a score model written by `saferlhf reward`)");
        if (string.IsNullOrWhiteSpace(CostModel))
            throw new CliException("config: 'cost_model' is required (a score model written by `saferlhf cost`)");
        if (string.IsNullOrWhiteSpace(Data)) throw new CliException("config: 'data' is required (PKU-SafeRLHF JSON lines with the prompts)");
        if (MaxPromptLength < 2) throw new CliException($"config: 'max_prompt_length' must be ≥ 2, got {MaxPromptLength}");
    }
}

/// <summary>`saferlhf ppo|ppo-lag|reward-shaping`: RL fine-tuning of an actor against frozen reward and cost models.</summary>
public sealed record RlConfig : RlInputsConfig
{
    /// <summary>The initial policy (usually the SFT model); the reference policy is a frozen copy of it.</summary>
    public string Actor { get; init; } = "";
    public PpoOptions Rl { get; init; } = new() { Steps = 10, BatchSize = 8 };
    /// <summary>Save a checkpoint every this many steps (default 50; 0 = only at the end, on interruption and at
    /// stop_after_steps).</summary>
    public int CheckpointEvery { get; init; } = Rlhf.Checkpoints.CheckpointSchedule.DefaultEvery;
    /// <summary>Stop with a checkpoint once the run reaches this many steps in all (0 = run to rl.steps); continue
    /// with --resume (which does not stop there again).</summary>
    public int StopAfterSteps { get; init; }

    /// <summary>This config with every file path made absolute (against the current folder), so that config.json
    /// names the same files wherever the run is resumed from.</summary>
    public RlConfig WithAbsolutePaths() => this with
    {
        Actor = ConfigPaths.Absolute(Actor)!, RewardModel = ConfigPaths.Absolute(RewardModel)!, CostModel = ConfigPaths.Absolute(CostModel)!,
        ScoreBase = ConfigPaths.Absolute(ScoreBase), Tokenizer = ConfigPaths.Absolute(Tokenizer), Data = ConfigPaths.Absolute(Data)!,
        PtxData = ConfigPaths.Absolute(PtxData),
    };
    /// <summary>LoRA adapters for the actor and both critics instead of full fine-tuning (null). The actor's base
    /// loads as the block says (optionally quantized) and the reference policy is the actor with its adapters off;
    /// an actor that already holds adapters (a LoRA SFT model) trains those, against a frozen copy of itself.</summary>
    public LoraConfig? Lora { get; init; }
    /// <summary>Pretraining (PTX) data for the actor: Alpaca-style JSON lines, used when rl.ptx_coeff &gt; 0.</summary>
    public string? PtxData { get; init; }
    /// <summary>Most tokens per PTX sequence (template + response + EOS); longer ones are truncated.</summary>
    public int PtxMaxLength { get; init; } = 512;

    public override void Validate()
    {
        if (string.IsNullOrWhiteSpace(Actor)) throw new CliException("config: 'actor' is required (path of the initial policy)");
        base.Validate();
        Lora?.Validate("lora");
        if (CheckpointEvery < 0) throw new CliException($"config: 'checkpoint_every' must be ≥ 0, got {CheckpointEvery}");
        if (StopAfterSteps < 0) throw new CliException($"config: 'stop_after_steps' must be ≥ 0, got {StopAfterSteps}");
        var o = Rl ?? throw new CliException("config: 'rl' must be an object");
        if (o.Steps <= 0) throw new CliException($"config: 'rl.steps' must be > 0, got {o.Steps}");
        if (o.BatchSize <= 0) throw new CliException($"config: 'rl.batch_size' must be > 0, got {o.BatchSize}");
        if (o.MaxNewTokens <= 0) throw new CliException($"config: 'rl.max_new_tokens' must be > 0, got {o.MaxNewTokens}");
        Positive("rl.actor_lr", o.ActorLr);
        Positive("rl.critic_lr", o.CriticLr);
        Positive("rl.clip_norm", o.ClipNorm);
        Positive("rl.clip_range_ratio", o.ClipRangeRatio);
        Positive("rl.clip_range_value", o.ClipRangeValue);
        Positive("rl.clip_range_score", o.ClipRangeScore);
        Positive("rl.lambda_max", o.LambdaMax);
        NonNegative("rl.actor_weight_decay", o.ActorWeightDecay);
        NonNegative("rl.critic_weight_decay", o.CriticWeightDecay);
        NonNegative("rl.kl_coeff", o.KlCoeff);
        NonNegative("rl.lambda_init", o.LambdaInit);
        NonNegative("rl.lambda_lr", o.LambdaLr);
        NonNegative("rl.nu", o.Nu);
        NonNegative("rl.temperature", o.Temperature);
        if (!double.IsFinite(o.Threshold)) throw new CliException($"config: 'rl.threshold' must be a finite number, got {o.Threshold}");
        if (!(o.Gamma >= 0 && o.Gamma <= 1)) throw new CliException($"config: 'rl.gamma' must be in [0, 1], got {o.Gamma}");
        if (!(o.GaeLambda >= 0 && o.GaeLambda <= 1)) throw new CliException($"config: 'rl.gae_lambda' must be in [0, 1], got {o.GaeLambda}");
        if (!(o.TopP > 0 && o.TopP <= 1)) throw new CliException($"config: 'rl.top_p' must be in (0, 1], got {o.TopP}");
        if (o.EpisodeCostWindow < 1) throw new CliException($"config: 'rl.episode_cost_window' must be ≥ 1, got {o.EpisodeCostWindow}");
        NonNegative("rl.ptx_coeff", o.PtxCoeff);
        if (o.PtxCoeff > 0 && string.IsNullOrWhiteSpace(PtxData))
            throw new CliException($"config: 'rl.ptx_coeff' is {o.PtxCoeff} but no 'ptx_data' is given (Alpaca JSON lines for the PTX term)");
        if (o.PtxCoeff == 0 && !string.IsNullOrWhiteSpace(PtxData))
            throw new CliException("config: 'ptx_data' is given but 'rl.ptx_coeff' is 0, so it would not be used; set rl.ptx_coeff > 0");
        if (PtxMaxLength < 2) throw new CliException($"config: 'ptx_max_length' must be ≥ 2, got {PtxMaxLength}");
    }

    private static void Positive(string key, double value)
    {
        if (!(value > 0) || !double.IsFinite(value)) throw new CliException($"config: '{key}' must be a positive number, got {value}");
    }

    private static void NonNegative(string key, double value)
    {
        if (!(value >= 0) || !double.IsFinite(value)) throw new CliException($"config: '{key}' must be ≥ 0, got {value}");
    }
}

/// <summary>Sampling and batching for the commands that let policies answer prompts (eval, arena).</summary>
public abstract record RlSamplingConfig : RlInputsConfig
{
    public int MaxNewTokens { get; init; } = 32;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    /// <summary>Use at most this many prompts (0 = all usable ones).</summary>
    public int MaxPrompts { get; init; }
    /// <summary>Prompts answered per batch.</summary>
    public int BatchSize { get; init; } = 16;

    public override void Validate()
    {
        base.Validate();
        if (MaxNewTokens <= 0) throw new CliException($"config: 'max_new_tokens' must be > 0, got {MaxNewTokens}");
        if (!(Temperature >= 0) || !double.IsFinite(Temperature)) throw new CliException($"config: 'temperature' must be ≥ 0, got {Temperature}");
        if (!(TopP > 0 && TopP <= 1)) throw new CliException($"config: 'top_p' must be in (0, 1], got {TopP}");
        if (MaxPrompts < 0) throw new CliException($"config: 'max_prompts' must be ≥ 0, got {MaxPrompts}");
        if (BatchSize <= 0) throw new CliException($"config: 'batch_size' must be > 0, got {BatchSize}");
    }
}

/// <summary>`saferlhf eval`: one policy's reward, cost and unsafe rate; optionally the score models' accuracy on pairs.</summary>
public sealed record EvalConfig : RlSamplingConfig
{
    public string Policy { get; init; } = "";
    /// <summary>PKU-SafeRLHF pairs for the reward/cost models' ranking and sign accuracy (null = skip).</summary>
    public string? Pairs { get; init; }
    /// <summary>Most tokens per pair sequence (prompt template + response + EOS).</summary>
    public int MaxLength { get; init; } = 512;

    public override void Validate()
    {
        if (string.IsNullOrWhiteSpace(Policy)) throw new CliException("config: 'policy' is required (path of the policy to evaluate)");
        base.Validate();
        if (MaxLength < 2) throw new CliException($"config: 'max_length' must be ≥ 2, got {MaxLength}");
    }
}

/// <summary>`saferlhf arena`: two policies answer the same prompts with the same seed.</summary>
public sealed record ArenaConfig : RlSamplingConfig
{
    public string PolicyA { get; init; } = "";
    public string PolicyB { get; init; } = "";

    public override void Validate()
    {
        if (string.IsNullOrWhiteSpace(PolicyA)) throw new CliException("config: 'policy_a' is required (path of the first policy)");
        if (string.IsNullOrWhiteSpace(PolicyB)) throw new CliException("config: 'policy_b' is required (path of the second policy)");
        base.Validate();
    }
}
