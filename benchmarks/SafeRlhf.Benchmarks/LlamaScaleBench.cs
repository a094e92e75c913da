using System.Diagnostics;
using System.Globalization;
using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Benchmarks;

/// <summary>A LLaMA-7B-shaped model with random Q4_0 projection weights on the native backend: resident memory,
/// prefill tokens/s and KV-cache decode tokens/s. Weights are made one matrix at a time directly as Q4_0 blocks
/// (random 4-bit values, one fp16 scale per block), so the peak stays near the final model size.</summary>
public static class LlamaScaleBench
{
    public static void Run(int layers, int promptTokens, int decodeTokens, int threads, TextWriter output)
    {
        NativeBackend.Threads = threads;
        var device = new Device(new NativeBackend());
        var config = LlamaConfig.Llama7B with { NLayers = layers, SeqLen = promptTokens + decodeTokens + 8 };
        config.Validate();
        var process = Process.GetCurrentProcess();
        long Mib(long bytes) => bytes >> 20;
        output.WriteLine($"llama-scale: LLaMA-7B shape (dim {config.Dim}, hidden {config.HiddenDim}, {config.NHeads} heads, vocab {config.VocabSize}), " +
                         $"{layers} layers, Q4_0 projections, F32 embedding/norms, {Environment.ProcessorCount} cores, native threads {(threads == 0 ? "all" : threads)}");

        var build = Stopwatch.StartNew();
        using var model = Build(config, device, new Random(1));
        build.Stop();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long weightBytes = model.NamedParameters().Sum(p => p.Tensor.DType.ByteCount(p.Tensor.Numel));
        process.Refresh();
        output.WriteLine($"built in {build.Elapsed.TotalSeconds:F1} s: weights {Mib(weightBytes)} MiB, working set {Mib(process.WorkingSet64)} MiB, " +
                         $"peak {Mib(process.PeakWorkingSet64)} MiB");

        var rng = new Random(2);
        int[] prompt = [1, .. Enumerable.Range(0, promptTokens - 1).Select(_ => rng.Next(3, config.VocabSize))];
        // Warm-up (JIT, thread pool, page-in): a short prefill and two decode steps.
        Throughput.PrefillSeconds(model, prompt[..8]);
        Throughput.DecodeSeconds(model, 1, 2);
        double prefillSeconds = Throughput.PrefillSeconds(model, prompt);
        double decodeSeconds = Throughput.DecodeSeconds(model, 1, decodeTokens);
        process.Refresh();
        double prefillRate = promptTokens / prefillSeconds;
        double decodeRate = decodeTokens / decodeSeconds;
        output.WriteLine($"prefill {promptTokens} tokens: {prefillSeconds * 1e3:F0} ms = {prefillRate:F1} tok/s " +
                         $"({2.0 * ProjectionParams(config) * promptTokens / prefillSeconds / 1e9:F1} GFLOP/s in the projections)");
        output.WriteLine($"decode {decodeTokens} tokens: {decodeSeconds / decodeTokens * 1e3:F1} ms/token = {decodeRate:F2} tok/s " +
                         $"({weightBytes / 1e9 * decodeRate:F1} GB/s of weights)");
        output.WriteLine($"working set {Mib(process.WorkingSet64)} MiB, peak {Mib(process.PeakWorkingSet64)} MiB");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"bench\":\"llama-scale\",\"layers\":{layers},\"prompt_tokens\":{promptTokens},\"decode_tokens\":{decodeTokens},\"weights_mib\":{Mib(weightBytes)},\"working_set_mib\":{Mib(process.WorkingSet64)},\"peak_working_set_mib\":{Mib(process.PeakWorkingSet64)},\"prefill_tok_s\":{prefillRate:F2},\"decode_tok_s\":{decodeRate:F2}}}"));
    }

    private static long ProjectionParams(LlamaConfig c) =>
        (long)c.NLayers * (2L * c.Dim * c.Dim + 2L * c.KvDim * c.Dim + 3L * c.HiddenDim * c.Dim) + (long)c.VocabSize * c.Dim;

    private static LlamaModel Build(LlamaConfig c, Device device, Random random)
    {
        using var _ = TensorScope.Suspend();
        var tensors = new Dictionary<string, Tensor>();
        Tensor Ones(int n) => Ops.Full(device, DType.F32, 1.0, n);
        var embedding = new float[(long)c.VocabSize * c.Dim];
        for (int i = 0; i < embedding.Length; i++) embedding[i] = (float)((random.NextDouble() - 0.5) * 0.04);
        tensors["tok_embeddings.weight"] = Tensor.FromArray(device, embedding, c.VocabSize, c.Dim);
        for (int l = 0; l < c.NLayers; l++)
        {
            string p = $"layers.{l}.";
            tensors[p + "attention_norm.weight"] = Ones(c.Dim);
            tensors[p + "ffn_norm.weight"] = Ones(c.Dim);
            tensors[p + "attention.wq.weight"] = RandomQ4(device, random, c.Dim, c.Dim);
            tensors[p + "attention.wk.weight"] = RandomQ4(device, random, c.KvDim, c.Dim);
            tensors[p + "attention.wv.weight"] = RandomQ4(device, random, c.KvDim, c.Dim);
            tensors[p + "attention.wo.weight"] = RandomQ4(device, random, c.Dim, c.Dim);
            tensors[p + "feed_forward.w1.weight"] = RandomQ4(device, random, c.HiddenDim, c.Dim);
            tensors[p + "feed_forward.w2.weight"] = RandomQ4(device, random, c.Dim, c.HiddenDim);
            tensors[p + "feed_forward.w3.weight"] = RandomQ4(device, random, c.HiddenDim, c.Dim);
        }
        tensors["norm.weight"] = Ones(c.Dim);
        tensors["output.weight"] = RandomQ4(device, random, c.VocabSize, c.Dim);
        return LlamaModel.FromTensors(c, device, tensors);
    }

    /// <summary>Random Q4_0 blocks [rows, cols]: fp16 scale 0.004 (weights of std ≈ 0.02) and random 4-bit values.</summary>
    private static Tensor RandomQ4(Device device, Random random, int rows, int cols)
    {
        var bytes = new byte[DType.Q4_0.ByteCount((long)rows * cols)];
        random.NextBytes(bytes);
        ushort scale = BitConverter.HalfToUInt16Bits((Half)0.004f);
        for (int b = 0; b < bytes.Length; b += DTypeInfo.Q4_0BlockBytes)
        {
            bytes[b] = (byte)scale;
            bytes[b + 1] = (byte)(scale >> 8);
        }
        return Tensor.FromBytes(device, DType.Q4_0, bytes, rows, cols);
    }
}
