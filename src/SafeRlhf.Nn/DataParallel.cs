using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Nn;

/// <summary>How an optimizer's parameters are trained across the ranks of a data-parallel job: gradients are
/// summed over <see cref="Comm"/>'s ranks in buckets of <see cref="BucketBytes"/>; with
/// <see cref="ShardOptimizerState"/> (ZeRO stage 1) each rank keeps the AdamW moments of one contiguous
/// 1/N of the flattened parameters only, receives its share of the summed gradients (reduce-scatter), updates
/// that share and all-gathers the updated weights.</summary>
public sealed record DataParallel(ICommunicator Comm, bool ShardOptimizerState = false, long BucketBytes = 8 << 20)
{
    /// <summary>One rank, nothing shared: what a plain process uses.</summary>
    public static DataParallel Local { get; } = new(LocalCommunicator.Instance);

    /// <summary>The contiguous range [Start, Start + Length) of <paramref name="total"/> flattened elements that
    /// <paramref name="rank"/> owns when sharding over <paramref name="worldSize"/> ranks (the last shard may be
    /// shorter; the ranges tile [0, total)).</summary>
    public static (long Start, long Length) ShardOf(long total, int rank, int worldSize)
    {
        long per = (total + worldSize - 1) / worldSize;
        long start = Math.Min(total, per * rank);
        return (start, Math.Min(total, start + per) - start);
    }
}
