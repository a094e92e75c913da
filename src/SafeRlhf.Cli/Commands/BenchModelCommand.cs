using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SafeRlhf.Llama;
using SafeRlhf.Llama.Loading;
using SafeRlhf.Cli.Stages;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Cli.Commands;

/// <summary>`saferlhf bench-model`: prefill and decode tokens/s of a model file, in the manner of llama.cpp's llama-bench
/// (random prompt tokens, a prefill of -p tokens in one pass, a decode of -n tokens one at a time from an empty
/// cache; a warm-up run first, then -r timed repetitions: mean ± standard deviation and the best). Matrices stay in
/// the type the file stores them in, as llama.cpp keeps them (on the cpu device Q8_0/Q4_0 rows interleaved by 16, as
/// llama.cpp repacks Q4_0 on load; --weight-layout file keeps the file's layout). With --profile, one more run of each test goes through
/// the per-op profiler and its table follows (where each millisecond of a token goes).</summary>
public static class BenchModelCommand
{
    public sealed record Result(string Model, string Device, int Threads, string Types, long Parameters, string Test, int Tokens,
        double MeanTokensPerSecond, double StdDevTokensPerSecond, double BestTokensPerSecond, double[] Seconds);

    public static Command Create()
    {
        var modelOption = new Option<string>("--model")
        {
            Description = "Model: .gguf, .safetensors, llama2.c .bin, a Hugging Face, checkpoint or run folder", Required = true,
        };
        var promptOption = new Option<int>("-p", "--prompt-tokens") { Description = "Prompt tokens of the prefill test (0: skip it)", DefaultValueFactory = _ => 512 };
        var decodeOption = new Option<int>("-n", "--new-tokens") { Description = "Tokens of the decode test (0: skip it)", DefaultValueFactory = _ => 128 };
        var repsOption = new Option<int>("-r", "--repetitions") { Description = "Timed repetitions of each test after the warm-up", DefaultValueFactory = _ => 3 };
        var deviceOption = CommonOptions.Device();
        var threadsOption = CommonOptions.Threads();
        var kvCacheOption = CommonOptions.KvCache();
        var matmulOption = CommonOptions.MatMulInputs();
        var layoutOption = CommonOptions.WeightLayout();
        var jsonOption = new Option<bool>("--json") { Description = "Print one JSON array of results instead of the table" };
        var profileOption = new Option<bool>("--profile") { Description = "After the timed runs, one more run of each test per op (calls, ms, share, GB/s)" };
        var command = new Command("bench-model", "Prefill and decode tokens/s of a model file (like llama.cpp's llama-bench)")
        {
            modelOption, promptOption, decodeOption, repsOption, deviceOption, threadsOption, kvCacheOption, matmulOption, layoutOption, jsonOption,
            profileOption,
        };
        command.SetAction(parse => CliRunner.Run(parse, () =>
        {
            int prompt = parse.GetValue(promptOption), decode = parse.GetValue(decodeOption), reps = parse.GetValue(repsOption);
            if (prompt < 0) throw new CliException($"-p/--prompt-tokens: must be ≥ 0, got {prompt}");
            if (decode < 0) throw new CliException($"-n/--new-tokens: must be ≥ 0, got {decode}");
            if (prompt == 0 && decode == 0) throw new CliException("-p and -n are both 0: nothing to measure");
            if (reps < 1) throw new CliException($"-r/--repetitions: must be ≥ 1, got {reps}");
            int threads = DeviceFactory.ResolveThreads(parse.GetValue(threadsOption));
            var kvCache = CommonOptions.ParseKvCache(parse.GetValue(kvCacheOption));
            var inner = DeviceFactory.Create(parse.GetValue(deviceOption)!, parse.GetValue(threadsOption), parse.GetValue(matmulOption)!);
            // Only with --profile does the per-op profiler sit between the model and the backend (disabled during the
            // timed runs, enabled for the one profiled run of each test).
            var profiler = parse.GetValue(profileOption) ? new ProfilingBackend(inner.Backend) { Enabled = false } : null;
            var device = profiler is null ? inner : new Device(profiler);
            string path = parse.GetValue(modelOption)!;
            using var weights = StageData.OpenModel(path);
            var load = LlamaLoadOptions.FrozenStorage with { InterleaveRows = CommonOptions.InterleaveRows(parse.GetValue(layoutOption), device) };
            using var model = LlamaLoader.FromWeightFile(weights, device, load);
            model.KvCacheStorage = kvCache;
            var results = Run(model, path, inner.Name, threads, prompt, decode, reps);
            if (parse.GetValue(jsonOption))
                Console.WriteLine(JsonSerializer.Serialize(results, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            else
                Print(results);
            if (profiler is not null)
            {
                int[] tokens = Prompt(model.Config.VocabSize, prompt);
                if (prompt > 0) PrintProfile($"pp{prompt}", profiler, () => Throughput.PrefillSeconds(model, tokens));
                if (decode > 0) PrintProfile($"tg{decode}", profiler, () => Throughput.DecodeSeconds(model, tokens[0], decode));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>Runs the prefill test (pp<paramref name="prompt"/>) and the decode test (tg<paramref name="decode"/>).</summary>
    public static List<Result> Run(LlamaModel model, string path, string device, int threads, int prompt, int decode, int reps)
    {
        var parameters = model.NamedParameters().ToList();
        string types = string.Join("+", parameters.Where(p => p.Tensor.Rank >= 2).GroupBy(p => p.Tensor.DType)
            .OrderByDescending(g => g.Sum(p => p.Tensor.Numel)).Select(g => g.Key.ToString()));
        if (model.KvCacheStorage == KvCacheType.BF16) types += " (KV cache BF16)";
        long count = parameters.Sum(p => p.Tensor.Numel);
        int[] tokens = Prompt(model.Config.VocabSize, prompt);
        var results = new List<Result>();
        Result Measure(string test, int n, Func<double> once)
        {
            once();  // warm-up: code paths, thread pool, pages of the weights
            var seconds = Enumerable.Range(0, reps).Select(_ => once()).ToArray();
            var rates = seconds.Select(s => n / s).ToArray();
            double mean = rates.Average();
            double sd = rates.Length > 1 ? Math.Sqrt(rates.Sum(r => (r - mean) * (r - mean)) / (rates.Length - 1)) : 0;
            return new Result(Path.GetFileName(Path.TrimEndingDirectorySeparator(path)), device, threads, types, count, test, n,
                mean, sd, rates.Max(), seconds);
        }
        if (prompt > 0) results.Add(Measure($"pp{prompt}", prompt, () => Throughput.PrefillSeconds(model, tokens)));
        if (decode > 0) results.Add(Measure($"tg{decode}", decode, () => Throughput.DecodeSeconds(model, tokens[0], decode)));
        return results;
    }

    /// <summary>The benchmark's prompt: <paramref name="length"/> (at least one) token ids drawn from a fixed seed.</summary>
    private static int[] Prompt(int vocab, int length)
    {
        var rng = new Random(1);
        return [.. Enumerable.Range(0, Math.Max(length, 1)).Select(_ => rng.Next(vocab))];
    }

    /// <summary>One profiled run of a test: each op's calls, time, share of the run, and achieved GB/s and GFLOP/s.</summary>
    private static void PrintProfile(string test, ProfilingBackend profiler, Func<double> once)
    {
        profiler.Reset();
        profiler.Enabled = true;
        double wall = once();
        profiler.Enabled = false;
        var ops = profiler.Snapshot().OrderByDescending(o => o.Seconds).ToList();
        Console.WriteLine();
        Console.WriteLine($"{test}, one profiled run ({wall * 1e3:F1} ms):");
        Console.WriteLine("| op | calls | ms | share % | GB/s | GFLOP/s |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var o in ops)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {o.Op} | {o.Calls} | {o.Seconds * 1e3:F2} | {100 * o.Seconds / wall:F1} | {o.Gbps:F1} | {o.Gflops:F1} |"));
        double outside = Math.Max(0, wall - ops.Sum(o => o.Seconds));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| (outside the backend) | | {outside * 1e3:F2} | {100 * outside / wall:F1} | | |"));
    }

    private static void Print(List<Result> results)
    {
        Console.WriteLine("| model | types | params | device | threads | test | t/s (mean ± sd) | best t/s |");
        Console.WriteLine("|---|---|---:|---|---:|---|---:|---:|");
        foreach (var r in results)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Model} | {r.Types} | {r.Parameters / 1e6:F1} M | {r.Device} | {r.Threads} | {r.Test} | {r.MeanTokensPerSecond:F2} ± {r.StdDevTokensPerSecond:F2} | {r.BestTokensPerSecond:F2} |"));
    }
}
