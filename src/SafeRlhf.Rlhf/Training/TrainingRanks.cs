using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;

namespace SafeRlhf.Rlhf.Training;

/// <summary>The ranks of a data-parallel training run and what the trainers ask of them. Every rank draws the same
/// global batch from the same random stream and works on its own contiguous slice of it (<see cref="Slice"/>); a
/// rank's loss is its share of the global loss (<see cref="ShareOf"/>), so gradients summed over ranks are the
/// gradients of the global batch; metrics are summed or gathered into their global values; rank 0 alone writes
/// files. <see cref="Single"/> is the one-process run, where every method is the identity.</summary>
public sealed class TrainingRanks
{
    public TrainingRanks(DataParallel parallel) => Parallel = parallel;

    /// <summary>One process, nothing shared.</summary>
    public static TrainingRanks Single { get; } = new(DataParallel.Local);

    /// <summary>The ranks of <paramref name="comm"/>'s job (<see cref="Single"/> for a one-rank job), sharding optimizer
    /// state when <paramref name="shardOptimizerState"/>.</summary>
    public static TrainingRanks Of(ICommunicator comm, bool shardOptimizerState = false) =>
        comm.WorldSize == 1 ? Single : new TrainingRanks(new DataParallel(comm, shardOptimizerState));

    public DataParallel Parallel { get; }
    public ICommunicator Comm => Parallel.Comm;
    public int Rank => Comm.Rank;
    public int WorldSize => Comm.WorldSize;
    public bool IsSingle => WorldSize == 1;

    /// <summary>True on the rank that writes checkpoints, metrics and plots.</summary>
    public bool WritesFiles => Rank == 0;

    /// <summary>A new AdamW over <paramref name="model"/>'s trainable parameters, sharded over the ranks when the run
    /// asks for it (ZeRO stage 1).</summary>
    public AdamW NewOptimizer(Module model, double lr, double weightDecay) =>
        new(model.TrainableParameters(), lr, weightDecay: weightDecay, dataParallel: Parallel);

    /// <summary>This rank's rows [Start, Start + Count) of a global batch of <paramref name="globalBatch"/> rows; the
    /// batch must divide evenly (<paramref name="key"/> names the setting in the error).</summary>
    public (int Start, int Count) Slice(int globalBatch, string key)
    {
        if (globalBatch % WorldSize != 0)
            throw new ArgumentException($"{key} = {globalBatch} does not divide evenly over {WorldSize} ranks; use a multiple of {WorldSize}");
        int per = globalBatch / WorldSize;
        return (Rank * per, per);
    }

    /// <summary>This rank's slice of a list drawn for the whole global batch.</summary>
    public List<T> Mine<T>(IReadOnlyList<T> global, string key)
    {
        var (start, count) = Slice(global.Count, key);
        return global.Skip(start).Take(count).ToList();
    }

    /// <summary>The sum over ranks.</summary>
    public double Sum(double local)
    {
        if (IsSingle) return local;
        Span<double> v = [local];
        Comm.AllReduceSum(v);
        return v[0];
    }

    /// <summary>The weight of this rank's part of a mean over <paramref name="localCount"/> local items: its count over
    /// the global count (exactly 1 in a single process).</summary>
    public double ShareOf(double localCount) => IsSingle ? 1.0 : localCount / Sum(localCount);

    /// <summary>Every rank's equally long <paramref name="local"/>, concatenated in rank order (the global batch order).</summary>
    public double[] Gather(double[] local)
    {
        if (IsSingle) return local;
        var all = new double[local.Length * WorldSize];
        Comm.AllGather<double>(local, all);
        return all;
    }

    /// <summary>True when any rank says so (how ranks agree to stop together at a step boundary).</summary>
    public bool Any(bool local) => IsSingle ? local : Sum(local ? 1 : 0) > 0;

    /// <summary>Sums the gradients of <paramref name="optimizer"/>'s parameters over the ranks (nothing for one rank).</summary>
    public void ReduceGradients(AdamW optimizer)
    {
        optimizer.ReduceGradients();
    }

    /// <summary>Makes every rank's trainable weights rank 0's.</summary>
    public void BroadcastWeights(Module model)
    {
        if (IsSingle) return;
        foreach (var p in model.TrainableParameters().Select(x => x.Tensor))
        {
            var values = p.ToArray<float>();
            Comm.Broadcast<float>(values, 0);
            using var src = Tensor.FromArray<float>(p.Device, values, p.Shape.ToArray());
            p.Backend.Copy(src, p);
        }
    }

    /// <summary>Throws when the ranks' trainable weights differ (compares a checksum of every parameter).</summary>
    public void CheckIdentical(Module model, string when)
    {
        if (IsSingle) return;
        var sums = model.TrainableParameters().Select(p => Checksum(p.Tensor.ToArray<float>())).ToArray();
        var all = Gather(sums);
        for (int r = 1; r < WorldSize; r++)
            for (int i = 0; i < sums.Length; i++)
                if (all[r * sums.Length + i] != all[i])
                    throw new InvalidOperationException($"data-parallel ranks diverged {when}: rank {r}'s weights differ from rank 0's");
    }

    /// <summary>Throws when the ranks' random generators are in different states (every rank draws the same global
    /// batches, so their streams must stay identical).</summary>
    public void CheckIdentical(ulong[] rngState, string when)
    {
        if (IsSingle) return;
        var all = new ulong[rngState.Length * WorldSize];
        Comm.AllGather<ulong>(rngState, all);
        for (int r = 1; r < WorldSize; r++)
            for (int i = 0; i < rngState.Length; i++)
                if (all[r * rngState.Length + i] != all[i])
                    throw new InvalidOperationException($"data-parallel ranks diverged {when}: rank {r}'s random state differs from rank 0's");
    }

    private static double Checksum(float[] values)
    {
        double s = 0;
        for (int i = 0; i < values.Length; i++) s += values[i] * (1.0 + (i % 7));
        return s;
    }
}
