using SafeRlhf.Llama;
using SafeRlhf.Rlhf.Training;
using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;
using Xunit;

namespace SafeRlhf.Rlhf.Tests.Distributed;

/// <summary>A data-parallel rank generates a slice of the global batch: each sequence's tokens must be those one
/// process generating the whole batch samples for it.</summary>
public sealed class RolloutPartitionTests
{
    private static readonly LlamaConfig Tiny = new()
    {
        Dim = 32, HiddenDim = 64, NLayers = 2, NHeads = 4, NKvHeads = 2, VocabSize = 40, SeqLen = 64,
    };

    [Fact]
    public void ASliceOfTheBatchSamplesWhatTheWholeBatchSamplesForIt()
    {
        var device = TestDevices.Native;
        using var actor = LlamaModel.Create(Tiny, device, new Rng(3));
        int[][] prompts = [[1, 5, 6], [1, 7], [1, 9, 10, 11], [1, 12], [1, 4, 4, 8, 2], [1, 30]];
        var sampling = new SamplingOptions { Temperature = 1.0 };
        var whole = Rollout.Generate(actor, prompts, 12, sampling, new Rng(11), padId: 0, eosId: 2);
        var first = Rollout.Generate(actor, prompts[..3], 12, sampling, new Rng(11), padId: 0, eosId: 2, firstRow: 0);
        var second = Rollout.Generate(actor, prompts[3..], 12, sampling, new Rng(11), padId: 0, eosId: 2, firstRow: 3);
        var sliced = first.Responses.Concat(second.Responses).ToArray();
        Assert.Equal(whole.Responses.Length, sliced.Length);
        for (int i = 0; i < sliced.Length; i++) Assert.Equal(whole.Responses[i], sliced[i]);
        // The rows differ from one another, so the check above compares real samples, not one repeated stream.
        Assert.True(whole.Responses.Select(r => string.Join(',', r)).Distinct().Count() > 1);
    }
}
