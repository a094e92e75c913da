using System.Diagnostics;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama;

/// <summary>Timed inference passes, measured the way llama.cpp's llama-bench measures them: a prefill runs a whole
/// prompt through the model in one forward pass into an empty KV cache and takes the logits of its last position; a
/// decode runs one token at a time from an empty KV cache, each step taking the logits to the host and picking the
/// next token greedily. Both run without gradients; each call owns its cache (stored as the model's
/// <see cref="LlamaModel.KvCacheStorage"/> says) and temporaries.</summary>
public static class Throughput
{
    /// <summary>Seconds to prefill <paramref name="prompt"/> (token ids) in one pass.</summary>
    public static double PrefillSeconds(LlamaModel model, int[] prompt)
    {
        if (prompt.Length == 0) throw new ArgumentException("prefill: the prompt is empty", nameof(prompt));
        var device = model.Device;
        using var noGrad = GradMode.NoGrad();
        using var cache = new KvCache(device, model.Config, 1, prompt.Length, model.KvCacheStorage.Storage(DType.F32));
        var watch = Stopwatch.StartNew();
        using (new TensorScope())
        {
            var h = model.Forward(Tensor.FromArray(device, prompt, 1, prompt.Length),
                Tensor.FromArray(device, Enumerable.Range(0, prompt.Length).ToArray(), 1, prompt.Length), null, cache);
            _ = model.Logits(h.Narrow(1, prompt.Length - 1, 1)).ToArray<float>();
        }
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds to decode <paramref name="tokens"/> tokens one at a time, starting from
    /// <paramref name="firstToken"/> in an empty cache (greedy: each step feeds back the most likely token).</summary>
    public static double DecodeSeconds(LlamaModel model, int firstToken, int tokens)
    {
        if (tokens <= 0) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "decode: at least one token");
        var device = model.Device;
        using var noGrad = GradMode.NoGrad();
        using var cache = new KvCache(device, model.Config, 1, tokens, model.KvCacheStorage.Storage(DType.F32));
        int next = firstToken;
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < tokens; i++)
        {
            using var scope = new TensorScope();
            var h = model.Forward(Tensor.FromArray(device, [next], 1, 1), Tensor.FromArray(device, [cache.Length], 1, 1), null, cache);
            next = Sampler.ArgMax<float>(model.Logits(h).ToFloatArray());
        }
        return watch.Elapsed.TotalSeconds;
    }
}
