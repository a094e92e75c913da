// The llama.cpp side of `saferlhf bench-model`, measured the same way: random prompt tokens, a prefill of -p tokens
// in one decode call (logits of the last position only), a decode of -n tokens one call each from an empty KV cache
// (logits every step), a warm-up run first, then -r timed repetitions; mean ± sd and best tokens/s.
// Usage: dotnet run -c Release -- MODEL.gguf [-p 512] [-n 128] [-r 3] [-t THREADS]
using System.Diagnostics;
using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;

string model = args.Length > 0 ? args[0] : throw new ArgumentException("usage: llamacpp-bench MODEL.gguf [-p N] [-n N] [-r N] [-t N]");
int Option(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}
int prompt = Option("-p", 512), decode = Option("-n", 128), reps = Option("-r", 3), threads = Option("-t", Environment.ProcessorCount);

NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level >= LLamaLogLevel.Error) Console.Error.Write(message); });
var parameters = new ModelParams(model)
{
    ContextSize = (uint)Math.Max(prompt, decode) + 8,
    BatchSize = (uint)Math.Max(prompt, 1),
    UBatchSize = 512,
    Threads = threads,
    BatchThreads = threads,
    GpuLayerCount = 0,
};
using var weights = LLamaWeights.LoadFromFile(parameters);
using var context = weights.CreateContext(parameters);
int vocab = weights.Vocab.Count;
var rng = new Random(1);
var tokens = Enumerable.Range(0, Math.Max(prompt, 1)).Select(_ => (LLamaToken)rng.Next(vocab)).ToArray();
var batch = new LLamaBatch();

void Decode()
{
    var result = context.NativeHandle.Decode(batch);
    if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
}

double Prefill()
{
    context.NativeHandle.MemoryClear(true);
    batch.Clear();
    for (int i = 0; i < prompt; i++) batch.Add(tokens[i], i, LLamaSeqId.Zero, i == prompt - 1);
    var watch = Stopwatch.StartNew();
    Decode();
    return watch.Elapsed.TotalSeconds;
}

double Generate()
{
    context.NativeHandle.MemoryClear(true);
    var watch = Stopwatch.StartNew();
    for (int i = 0; i < decode; i++)
    {
        batch.Clear();
        batch.Add(tokens[0], i, LLamaSeqId.Zero, true);
        Decode();
    }
    return watch.Elapsed.TotalSeconds;
}

void Report(string test, int n, Func<double> once)
{
    once();
    var rates = Enumerable.Range(0, reps).Select(_ => n / once()).ToArray();
    double mean = rates.Average();
    double sd = rates.Length > 1 ? Math.Sqrt(rates.Sum(r => (r - mean) * (r - mean)) / (rates.Length - 1)) : 0;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {Path.GetFileName(model)} | llama.cpp | {threads} | {test} | {mean:F2} ± {sd:F2} | {rates.Max():F2} |"));
}

Console.Error.WriteLine($"llama.cpp system info: {System.Runtime.InteropServices.Marshal.PtrToStringAnsi((IntPtr)NativeApi.llama_print_system_info())}");
Console.WriteLine("| model | engine | threads | test | t/s (mean ± sd) | best t/s |");
Console.WriteLine("|---|---|---:|---|---:|---:|");
if (prompt > 0) Report($"pp{prompt}", prompt, Prefill);
if (decode > 0) Report($"tg{decode}", decode, Generate);
