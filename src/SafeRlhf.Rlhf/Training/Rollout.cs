using SafeRlhf.Llama;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Autograd;

namespace SafeRlhf.Rlhf.Training;

/// <summary>Sampled responses for a batch of prompts: sequences [B, L] = left-padded prompts (width P) followed by
/// right-padded responses (each ending with EOS unless cut at the length limit).</summary>
public sealed record RolloutBatch(SequenceBatch Sequences, int PromptWidth, int[][] Responses);

/// <summary>Batched KV-cache sampling from a policy. Each sequence has its own sampler, seeded from one draw of the
/// generator and the sequence's index in the global batch, so a sequence's tokens do not depend on
/// which other sequences share its batch: a data-parallel rank that generates rows [firstRow, firstRow + B) of a
/// global batch samples exactly what one process generating the whole batch samples for them.</summary>
public static class Rollout
{
    /// <param name="firstRow">the global batch index of <paramref name="prompts"/>[0] (0 in a single process).</param>
    public static RolloutBatch Generate(LlamaModel actor, IReadOnlyList<int[]> prompts, int maxNewTokens, SamplingOptions sampling,
        Rng rng, int padId, int eosId, int firstRow = 0)
    {
        using var noGrad = GradMode.NoGrad();
        var device = actor.Device;
        var dtype = actor.TokEmbeddings.Weight.DType;
        var promptBatch = SequenceBatch.LeftPadded(prompts, padId);
        int b = promptBatch.Batch, p = promptBatch.Length;
        int capacity = p + maxNewTokens;
        ulong batchSeed = rng.NextUInt64();
        var samplers = Enumerable.Range(0, b).Select(i => new Sampler(sampling with { Seed = RowSeed(batchSeed, firstRow + i) })).ToArray();
        using var cache = new KvCache(device, actor.Config, b, capacity, actor.KvCacheStorage.Storage(dtype));

        var mask = new List<double>[b];
        var responses = new List<int>[b];
        var done = new bool[b];
        var nextPosition = new int[b];
        for (int i = 0; i < b; i++)
        {
            mask[i] = promptBatch.Mask.Skip(i * p).Take(p).ToList();
            responses[i] = [];
            nextPosition[i] = prompts[i].Length;
        }

        int[] inputTokens = promptBatch.Tokens;
        int[] inputPositions = promptBatch.Positions;
        int width = p;
        for (int step = 0; step < maxNewTokens; step++)
        {
            using var scope = new TensorScope();
            int s = cache.Length + width;
            var keyMask = new double[b * s];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < s; j++) keyMask[i * s + j] = mask[i][j];
            var hidden = actor.Forward(Tensor.FromArray(device, inputTokens, b, width), Tensor.FromArray(device, inputPositions, b, width),
                PolicyOps.FromValues(device, dtype, keyMask, b, s), cache);
            var sampled = Sampler.NextRows(actor.Logits(hidden.Narrow(1, width - 1, 1)), samplers, done.Select(d => !d).ToArray());
            inputTokens = new int[b];
            inputPositions = new int[b];
            for (int i = 0; i < b; i++)
            {
                int token = padId;
                bool wasDone = done[i];
                if (!wasDone)
                {
                    token = sampled[i];
                    responses[i].Add(token);
                    done[i] = token == eosId;
                }
                inputTokens[i] = token;
                inputPositions[i] = nextPosition[i]++;
                mask[i].Add(wasDone ? 0 : 1);
            }
            width = 1;
            if (done.All(d => d)) break;
        }
        var full = ConcatLeftPadded(promptBatch, responses, padId);
        return new RolloutBatch(full, p, responses.Select(r => r.ToArray()).ToArray());
    }

    /// <summary>The sampler seed of global row <paramref name="row"/> of a batch drawn with <paramref name="batchSeed"/>
    /// (the Rng constructor mixes it through SplitMix64, so neighbouring rows get unrelated streams).</summary>
    public static ulong RowSeed(ulong batchSeed, int row) => unchecked(batchSeed + 0x9E3779B97F4A7C15UL * (ulong)(row + 1));

    /// <summary>Left-padded prompts followed by right-padded responses, as one batch.</summary>
    private static SequenceBatch ConcatLeftPadded(SequenceBatch prompts, List<int>[] responses, int padId)
    {
        int width = responses.Max(r => r.Count);
        var rows = new List<int[]>();
        var rowsMask = new List<double[]>();
        for (int i = 0; i < prompts.Batch; i++)
        {
            var tokens = new int[prompts.Length + width];
            var mask = new double[tokens.Length];
            Array.Fill(tokens, padId);
            for (int t = 0; t < prompts.Length; t++)
            {
                tokens[t] = prompts.Tokens[i * prompts.Length + t];
                mask[t] = prompts.Mask[i * prompts.Length + t];
            }
            for (int t = 0; t < responses[i].Count; t++)
            {
                tokens[prompts.Length + t] = responses[i][t];
                mask[prompts.Length + t] = 1;
            }
            rows.Add(tokens);
            rowsMask.Add(mask);
        }
        return SequenceBatch.FromMasked(rows, rowsMask);
    }
}
