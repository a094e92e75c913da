using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Llama;

/// <summary>KV-cache generation: one prefill pass over the prompt, then one token per step.</summary>
public static class Generator
{
    /// <summary>Generates up to <paramref name="maxNewTokens"/> tokens after <paramref name="promptIds"/>, stopping
    /// after <paramref name="stopId"/> if given. <paramref name="onToken"/> sees each new id as it is produced.</summary>
    public static List<int> Generate(LlamaModel model, IReadOnlyList<int> promptIds, int maxNewTokens, SamplingOptions options,
        int? stopId = null, Action<int>? onToken = null)
    {
        if (promptIds.Count == 0) throw new ArgumentException("Generate: the prompt has no tokens (add BOS)");
        int capacity = Math.Min(model.Config.SeqLen, promptIds.Count + maxNewTokens);
        if (promptIds.Count > capacity)
            throw new ArgumentException($"Generate: prompt of {promptIds.Count} tokens exceeds the model's sequence length {model.Config.SeqLen}");
        var sampler = new Sampler(options);
        var device = model.Device;
        var sequence = new List<int>(promptIds);
        var generated = new List<int>();
        using var noGrad = GradMode.NoGrad();
        using var cache = new KvCache(device, model.Config, 1, capacity, model.KvCacheStorage.Storage(model.TokEmbeddings.Weight.DType));
        var input = promptIds.ToArray();
        while (generated.Count < maxNewTokens)
        {
            using var scope = new TensorScope();
            int start = cache.Length;
            var tokens = Tensor.FromArray(device, input, 1, input.Length);
            var positions = Tensor.FromArray(device, Enumerable.Range(start, input.Length).ToArray(), 1, input.Length);
            var hidden = model.Forward(tokens, positions, null, cache);
            var last = hidden.Narrow(1, input.Length - 1, 1);
            int next = sampler.NextRows(model.Logits(last), previous: options.RepetitionPenalty != 1.0 ? [sequence] : null)[0];
            generated.Add(next);
            sequence.Add(next);
            onToken?.Invoke(next);
            if (stopId == next || cache.Length >= capacity) break;
            input = [next];
        }
        return generated;
    }
}
