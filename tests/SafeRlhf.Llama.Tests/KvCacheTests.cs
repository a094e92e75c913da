using SafeRlhf.Backends.Cpu.Native;
using SafeRlhf.Backends.Cpu.Reference;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;
using SafeRlhf.Tensors.Profiling;

namespace SafeRlhf.Llama.Tests;

/// <summary>Batched decoding reads the KV cache in place: the filled part [B, S, Hkv, D] of a cache
/// [B, capacity, Hkv, D] goes to attention as a batch-strided view, never copied.</summary>
public sealed class KvCacheTests
{
    public static TheoryData<string> Backends => new() { "reference", "native" };

    private static readonly LlamaConfig Config = new()
    {
        Dim = 16, HiddenDim = 24, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 13, SeqLen = 32,
    };

    /// <summary>The values in their own dtype (reading F32 as double would add a converting copy).</summary>
    private static double[] Read(Tensor t) =>
        t.DType == DType.F32 ? Array.ConvertAll(t.ToFloatArray(), x => (double)x) : t.ToDoubleArray();

    [Theory]
    [MemberData(nameof(Backends))]
    public void BatchedDecodingMatchesTheFullForwardWithoutCopyingTheCache(string backend)
    {
        IBackend inner = backend == "native" ? new NativeBackend() : new ReferenceBackend();
        var profiler = new ProfilingBackend(inner);
        var dev = new Device(profiler);
        var dtype = backend == "native" ? DType.F32 : DType.F64;
        using var m = LlamaModel.Create(Config, dev, new Rng(3), dtype);
        int[][] rows = [[1, 5, 3, 9, 2, 7], [4, 4, 8, 1, 6, 12]];
        const int b = 2, t = 6, prompt = 4;
        using var _ = GradMode.NoGrad();

        double[] Full()
        {
            using var scope = new TensorScope();
            var tokens = Tensor.FromArray(dev, rows.SelectMany(r => r).ToArray(), b, t);
            var positions = Tensor.FromArray(dev, Enumerable.Range(0, b * t).Select(i => i % t).ToArray(), b, t);
            return Read(m.Logits(m.Forward(tokens, positions)));
        }
        var full = Full();

        using var cache = new KvCache(dev, Config, b, capacity: 16, dtype);
        var decoded = new double[b, t, Config.VocabSize];
        void Step(int start, int len)
        {
            using var scope = new TensorScope();
            var tokens = Tensor.FromArray(dev, rows.SelectMany(r => r[start..(start + len)]).ToArray(), b, len);
            var positions = Tensor.FromArray(dev, Enumerable.Range(0, b * len).Select(i => start + i % len).ToArray(), b, len);
            var logits = Read(m.Logits(m.Forward(tokens, positions, null, cache)));
            for (int i = 0; i < b; i++)
                for (int j = 0; j < len; j++)
                    for (int v = 0; v < Config.VocabSize; v++) decoded[i, start + j, v] = logits[(i * len + j) * Config.VocabSize + v];
        }
        Step(0, prompt);
        var copyBytes = new List<double>();
        for (int pos = prompt; pos < t; pos++)
        {
            profiler.Reset();
            Step(pos, 1);
            // A decode step copies the new keys and values into the cache (one each per layer) and expands the
            // embedding's row index; nothing that grows with the cache.
            var copies = profiler.Get("Copy")!;
            Assert.Equal(2 * Config.NLayers + 1, copies.Calls);
            copyBytes.Add(copies.Bytes);
        }
        Assert.All(copyBytes, bytes => Assert.Equal(copyBytes[0], bytes));

        double tol = dtype == DType.F32 ? 1e-4 : 1e-10;
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++)
                for (int v = 0; v < Config.VocabSize; v++)
                {
                    double e = full[(i * t + j) * Config.VocabSize + v], a = decoded[i, j, v];
                    Assert.True(Math.Abs(e - a) <= tol * (1 + Math.Abs(e)), $"row {i}, position {j}, token {v}: {e} vs {a}");
                }
    }
}
