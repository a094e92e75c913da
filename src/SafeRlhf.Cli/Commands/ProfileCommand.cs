using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Gpu;
using SafeRlhf.Cli.Distributed;
using SafeRlhf.Llama;
using SafeRlhf.Nn;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;
using SafeRlhf.Tensors.Profiling;
using Spectre.Console;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf profile`: one warm-up and one measured step of a small randomly initialised LLaMA through a
/// <see cref="ProfilingBackend"/>, reported per op (calls, time, share, achieved GFLOP/s and GB/s) with totals:
/// tokens/s and MFU, the matmul and attention FLOPs of the step over its wall time and the device's fp32 peak.</summary>
public static class ProfileCommand
{
    /// <summary>What the measured step does.</summary>
    public static readonly string[] Stages = ["sft", "rollout", "ppo"];

    /// <summary>Ops whose FLOPs count toward MFU: the model's matrix products and attention (the rest is
    /// bandwidth-bound bookkeeping that a FLOP ceiling does not describe).</summary>
    private static readonly HashSet<string> ModelFlopOps =
        ["MatMul", "QuantizedMatMul", "QuantizedMatMulBackward", "Attention", "AttentionBackward"];

    /// <summary>Sizes and stage of one profile run.</summary>
    public sealed record Settings(string Device, int Threads, string Stage, int Dim, int Layers, int Heads, int Hidden,
        int Vocab, int Seq, int Batch, int NewTokens, ulong Seed);

    public static Command Create()
    {
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var stageOption = new Option<string>("--stage")
        {
            Description = "sft: forward + backward + AdamW on [batch, seq] tokens; rollout: KV-cache generation of " +
                          "--new-tokens after a prompt of seq − new-tokens; ppo: one PPO-Lagrangian step (rollout, scoring, actor and critic updates)",
            DefaultValueFactory = _ => "sft",
        };
        var jsonOption = new Option<bool>("--json") { Description = "One JSON object per op, then a totals object" };
        var dimOption = new Option<int>("--dim") { Description = "Model width", DefaultValueFactory = _ => 256 };
        var layersOption = new Option<int>("--layers") { Description = "Transformer blocks", DefaultValueFactory = _ => 4 };
        var headsOption = new Option<int>("--heads") { Description = "Attention heads (0: dim / 64, at least 1)" };
        var hiddenOption = new Option<int>("--hidden") { Description = "Feed-forward width (0: LLaMA's 8·dim/3 rounded up to 32)" };
        var vocabOption = new Option<int>("--vocab") { Description = "Vocabulary size", DefaultValueFactory = _ => 1024 };
        var seqOption = new Option<int>("--seq") { Description = "Sequence length", DefaultValueFactory = _ => 128 };
        var batchOption = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => 8 };
        var newTokensOption = new Option<int>("--new-tokens") { Description = "Generated tokens for rollout and ppo (0: seq / 2)" };
        var seedOption = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
        var command = new Command("profile", "Profile one training step or rollout of a small LLaMA per op: time, share, GFLOP/s, GB/s, tokens/s and MFU")
        {
            deviceOption, threadsOption, stageOption, jsonOption, dimOption, layersOption, headsOption, hiddenOption,
            vocabOption, seqOption, batchOption, newTokensOption, seedOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            int dim = parse.GetValue(dimOption), seq = parse.GetValue(seqOption);
            int heads = parse.GetValue(headsOption), hidden = parse.GetValue(hiddenOption), newTokens = parse.GetValue(newTokensOption);
            var settings = new Settings(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption), parse.GetValue(stageOption)!,
                dim, parse.GetValue(layersOption), heads > 0 ? heads : Math.Max(1, dim / 64), hidden > 0 ? hidden : (8 * dim / 3 + 31) / 32 * 32,
                parse.GetValue(vocabOption), seq, parse.GetValue(batchOption), newTokens > 0 ? newTokens : seq / 2, parse.GetValue(seedOption));
            return Execute(settings, parse.GetValue(jsonOption), Console.Out);
        }));
        return command;
    }

    /// <summary>Runs the profile and writes the report to <paramref name="output"/>; returns the exit code.</summary>
    public static int Execute(Settings s, bool json, TextWriter output)
    {
        Validate(s);
        var config = new LlamaConfig
        {
            Dim = s.Dim, HiddenDim = s.Hidden, NLayers = s.Layers, NHeads = s.Heads, NKvHeads = s.Heads, VocabSize = s.Vocab, SeqLen = s.Seq,
        };
        try
        {
            config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new CliException(ex.Message);
        }

        var inner = DeviceFactory.Create(s.Device, s.Threads).Backend;
        try
        {
            Action? synchronize = inner is GpuBackend gpu ? gpu.Synchronize : null;
            var profiler = new ProfilingBackend(inner, synchronize) { Enabled = false };
            var device = new Device(profiler);
            var rng = new Rng(s.Seed);
            var comm = new TimedCommunicator(ProcessRanks.Comm);
            var step = BuildStage(s, config, device, rng, comm);
            step();
            synchronize?.Invoke();
            profiler.Enabled = true;
            comm.Barrier();
            comm.Reset();

            long start = Stopwatch.GetTimestamp();
            step();
            synchronize?.Invoke();
            double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;

            var ops = profiler.Snapshot();
            var (peak, peakSource, threads) = Peak(s.Device, inner);
            var totals = Totals.From(s, threads, ops, wall, peak, peakSource);
            if (json) WriteJson(ops, totals, output);
            else WriteTable(s, ops, totals, output);
            if (comm.WorldSize > 1 && !json)
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"data parallel: {comm.WorldSize} ranks ({comm.Transport}), each on {s.Batch / comm.WorldSize} of the {s.Batch} sequences; " +
                    $"rank 0 spent {comm.Seconds * 1e3:F1} ms in {comm.Calls} collectives ({100 * comm.Seconds / wall:F1} % of the step)"));
            return 0;
        }
        finally
        {
            (inner as IDisposable)?.Dispose();
            if (inner is NativeBackend) NativeBackend.Threads = 0;
        }
    }

    private static void Validate(Settings s)
    {
        if (!Stages.Contains(s.Stage)) throw new CliException($"--stage: unknown stage '{s.Stage}' (valid: {string.Join(", ", Stages)})");
        void Positive(int value, string name)
        {
            if (value <= 0) throw new CliException($"{name}: must be positive, got {value}");
        }
        Positive(s.Dim, "--dim");
        Positive(s.Layers, "--layers");
        Positive(s.Vocab, "--vocab");
        Positive(s.Seq, "--seq");
        Positive(s.Batch, "--batch");
        if (s.Dim % s.Heads != 0 || s.Dim / s.Heads % 2 != 0)
            throw new CliException($"--heads: dim {s.Dim} must split into {s.Heads} heads of an even size");
        if (s.Stage == "sft" && s.Seq < 2) throw new CliException("--seq: sft needs at least 2 tokens");
        if (s.Stage != "sft" && (s.NewTokens <= 0 || s.NewTokens >= s.Seq))
            throw new CliException($"--new-tokens: must be in [1, seq − 1] = [1, {s.Seq - 1}], got {s.NewTokens}");
    }

    // ---------------- the measured step ----------------

    /// <summary>Builds the models and returns one step of the chosen stage (called twice: warm-up and measured).</summary>
    private static Action BuildStage(Settings s, LlamaConfig config, Device device, Rng rng, ICommunicator comm)
    {
        var actor = LlamaModel.Create(config, device, rng);
        int promptLength = s.Seq - s.NewTokens;
        int[] RandomTokens(Rng r, int count) => Enumerable.Range(0, count).Select(_ => 1 + r.NextInt(s.Vocab - 1)).ToArray();
        switch (s.Stage)
        {
            case "sft":
            {
                // Under mpirun each rank trains on its slice of the batch and gradients are summed over the ranks.
                var ranks = TrainingRanks.Of(comm);
                var optimizer = ranks.NewOptimizer(actor, 1e-4, 0.01);
                ranks.BroadcastWeights(actor);
                int prompt = Math.Max(1, s.Seq / 4);
                return () =>
                {
                    using var scope = new TensorScope();
                    var examples = Enumerable.Range(0, s.Batch).Select(_ =>
                    {
                        var tokens = RandomTokens(rng, s.Seq);
                        return new SftTrainer.Example(tokens[..prompt], tokens[prompt..]);
                    }).ToList();
                    var mine = ranks.Mine(examples, "--batch");
                    var loss = SftTrainer.Loss(actor, mine, padId: 0);
                    if (!ranks.IsSingle) loss = loss.Scale(ranks.ShareOf(mine.Sum(e => e.Response.Length)));
                    loss.Backward();
                    GradientStep.Apply(optimizer, actor, 1.0, ranks);
                };
            }
            case "rollout":
                return () =>
                {
                    var prompts = Enumerable.Range(0, s.Batch).Select(_ => RandomTokens(rng, promptLength)).ToList();
                    Rollout.Generate(actor, prompts, s.NewTokens, new SamplingOptions { Temperature = 1.0 }, rng, padId: 0, eosId: -1);
                };
            default:
            {
                ScoreModel Score() => ScoreModel.Create(LlamaModel.Create(config, device, rng), rng);
                var trainer = new PpoTrainer(RlMode.PpoLagrangian, actor, reference: null, Score(), Score(), Score(), Score(),
                    new PpoOptions { Steps = 2, BatchSize = s.Batch, MaxNewTokens = s.NewTokens, ActorLr = 1e-5, CriticLr = 5e-6 },
                    r => RandomTokens(r, promptLength), rng, padId: 0, eosId: -1);
                return () => trainer.Step();
            }
        }
    }

    /// <summary>Tokens the step processes: sft trains on batch × seq; rollout and ppo generate batch × new tokens.</summary>
    private static long TokenCount(Settings s) => s.Stage == "sft" ? (long)s.Batch * s.Seq : (long)s.Batch * s.NewTokens;

    /// <summary>fp32 peak of the device and the threads (SMs on CUDA) it ran on: the native FMA probe for the CPU
    /// devices (the CPU accelerator and the reference backend run on the same cores), the device properties for CUDA.</summary>
    private static (double Gflops, string Source, int Threads) Peak(string device, IBackend inner)
    {
        if (device == "cuda")
        {
            var peak = GpuKernelBench.CudaPeak();
            return (peak.Gflops, peak.Source, peak.ComputeUnits);
        }
        int threads = inner is NativeBackend ? NativeProbe.Threads : device == "reference" ? 1 : Environment.ProcessorCount;
        return (NativeProbe.FmaPeakGflops(threads, 0.2), $"native FMA probe, {threads} threads", threads);
    }

    // ---------------- report ----------------

    private sealed record Totals(string Stage, string Device, int Threads, double WallSeconds, double BackendSeconds, long Calls,
        long Tokens, double Flops, double Bytes, double ModelFlops, double PeakGflops, string PeakSource)
    {
        public double TokensPerSecond => Tokens / WallSeconds;
        public double Gflops => Flops / WallSeconds / 1e9;
        public double ModelGflops => ModelFlops / WallSeconds / 1e9;
        /// <summary>Model FLOPs utilisation in percent.</summary>
        public double Mfu => PeakGflops > 0 ? 100 * ModelGflops / PeakGflops : 0;

        public static Totals From(Settings s, int threads, IReadOnlyList<OpProfile> ops, double wall, double peak, string peakSource) => new(
            s.Stage, s.Device, threads, wall, ops.Sum(o => o.Seconds), ops.Sum(o => o.Calls),
            TokenCount(s), ops.Sum(o => o.Flops), ops.Sum(o => o.Bytes), ops.Where(o => ModelFlopOps.Contains(o.Op)).Sum(o => o.Flops),
            peak, peakSource);
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static void WriteJson(IReadOnlyList<OpProfile> ops, Totals t, TextWriter output)
    {
        foreach (var o in ops)
        {
            output.WriteLine(JsonSerializer.Serialize(new
            {
                Op = o.Op, Calls = o.Calls, Ms = o.Seconds * 1e3, Share = 100 * o.Seconds / t.WallSeconds,
                Flops = o.Flops, Bytes = o.Bytes, Gflops = o.Gflops, Gbps = o.Gbps,
            }, JsonOptions));
        }
        output.WriteLine(JsonSerializer.Serialize(new
        {
            Op = "total", t.Stage, t.Device, t.Threads, t.Calls, WallMs = t.WallSeconds * 1e3, BackendMs = t.BackendSeconds * 1e3,
            t.Tokens, t.TokensPerSecond, t.Flops, t.Bytes, t.Gflops, t.ModelFlops, t.ModelGflops, t.PeakGflops, t.PeakSource, t.Mfu,
        }, JsonOptions));
    }

    private static void WriteTable(Settings s, IReadOnlyList<OpProfile> ops, Totals t, TextWriter output)
    {
        var console = CliConsole.Create(output);
        static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
        var table = new Table().Title(
            $"[bold]{s.Stage}[/] step on {s.Device}: dim {s.Dim}, {s.Layers} layers, {s.Heads} heads, hidden {s.Hidden}, vocab {s.Vocab}, " +
            $"seq {s.Seq}, batch {s.Batch}" + (s.Stage == "sft" ? "" : $", {s.NewTokens} new tokens"));
        table.AddColumn("op");
        foreach (var c in new[] { "calls", "total ms", "share %", "GFLOP/s", "GB/s" }) table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var o in ops)
            table.AddRow(Markup.Escape(o.Op), o.Calls.ToString(CultureInfo.InvariantCulture), F(o.Seconds * 1e3, "F2"),
                F(100 * o.Seconds / t.WallSeconds, "F1"), o.Flops > 0 ? F(o.Gflops, "F1") : "–", F(o.Gbps, "F1"));
        double outside = Math.Max(0, t.WallSeconds - t.BackendSeconds);
        table.AddRow("[dim](outside the backend)[/]", "", F(outside * 1e3, "F2"), F(100 * outside / t.WallSeconds, "F1"), "", "");
        table.AddRow("[bold]total[/]", t.Calls.ToString(CultureInfo.InvariantCulture), F(t.WallSeconds * 1e3, "F2"), "100.0",
            F(t.Gflops, "F1"), F(t.Bytes / t.WallSeconds / 1e9, "F1"));
        console.Write(table);
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"tokens/s {t.TokensPerSecond:F1} ({t.Tokens} tokens in {t.WallSeconds * 1e3:F1} ms); matmul + attention {t.ModelGflops:F1} GFLOP/s; " +
            $"MFU {t.Mfu:F1} % of {t.PeakGflops:F1} GFLOP/s ({t.PeakSource})"));
    }
}
