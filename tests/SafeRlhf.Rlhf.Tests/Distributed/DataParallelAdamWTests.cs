using SafeRlhf.Nn;
using SafeRlhf.Tensors;
using SafeRlhf.Tensors.Distributed;
using SafeRlhf.TestSupport;
using SafeRlhf.TestSupport.Distributed;
using Xunit;

namespace SafeRlhf.Rlhf.Tests.Distributed;

/// <summary>AdamW across ranks (run as threads in one process) against one AdamW fed the summed gradients.</summary>
public sealed class DataParallelAdamWTests
{
    private static readonly int[][] Shapes = [[5, 7], [13], [3, 4, 2], [1]];

    /// <summary>Rank r's gradient of parameter i at step t: deterministic, different on every rank.</summary>
    private static float[] Grad(int rank, int param, int step, long n) =>
        Enumerable.Range(0, (int)n).Select(j => (float)System.Math.Sin(1.3 * j + 0.7 * param + 2.1 * rank + 0.37 * step) * (rank + 1)).ToArray();

    private static List<(string, Tensor)> Parameters(Device device) =>
        Shapes.Select((dims, i) =>
        {
            var values = Enumerable.Range(0, dims.Aggregate(1, (a, b) => a * b)).Select(j => (float)System.Math.Cos(0.5 * j + i)).ToArray();
            var t = Tensor.FromArray<float>(device, values, dims);
            t.RequiresGrad = true;
            return ($"p{i}", t);
        }).ToList();

    /// <summary>Gives <paramref name="p"/> the gradient <paramref name="g"/>: backward of sum(p ⊙ g).</summary>
    private static void SetGrad(Device device, Tensor p, float[] g)
    {
        p.ZeroGrad();
        using var scope = new TensorScope();
        var weights = Tensor.FromArray<float>(device, g, p.Shape.ToArray());
        Ops.Mul(p, weights).Sum().Backward();
    }

    private static float[][] Train(Device device, int worldSize, int rankCount, bool shard, ICommunicator? comm, int steps, double clip)
    {
        var ps = Parameters(device);
        var dp = comm is null ? null : new DataParallel(comm, shard, BucketBytes: 64);
        using var opt = new AdamW(ps, 1e-2, weightDecay: 0.1, dataParallel: dp);
        for (int step = 0; step < steps; step++)
        {
            for (int i = 0; i < ps.Count; i++)
            {
                var p = ps[i].Item2;
                var g = new float[p.Numel];
                // Each rank's gradient is its share (1/W) of the mean loss; without a communicator the gradient is the
                // sum of every rank's share (what the reduction computes), added in rank order.
                for (int r = 0; r < worldSize; r++)
                {
                    if (comm is not null && r != comm.Rank) continue;
                    var gr = Grad(r, i, step, p.Numel);
                    for (int j = 0; j < g.Length; j++) g[j] += (float)(gr[j] * (1.0 / worldSize));
                }
                SetGrad(device, p, g);
            }
            opt.ReduceGradients();
            opt.ClipGradNorm(clip);
            opt.Update();
        }
        return ps.Select(p => p.Item2.ToArray<float>()).ToArray();
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(3, true)]
    public void RanksEndWithTheWeightsOfOneOptimizerOnTheSummedGradients(int worldSize, bool shard)
    {
        var device = TestDevices.Native;
        var expected = Train(device, worldSize, worldSize, false, null, steps: 4, clip: 0.5);
        var ranks = ThreadCommunicator.RunRanks(worldSize, comm => Train(device, worldSize, worldSize, shard, comm, steps: 4, clip: 0.5));
        foreach (var got in ranks)
            for (int i = 0; i < expected.Length; i++)
                for (int j = 0; j < expected[i].Length; j++)
                    Assert.True(System.Math.Abs(got[i][j] - expected[i][j]) <= 1e-6 * System.Math.Max(1, System.Math.Abs(expected[i][j])),
                        $"parameter {i}[{j}]: {got[i][j]} vs {expected[i][j]} ({worldSize} ranks, shard {shard})");
    }

    [Fact]
    public void ShardedMomentsAreAFractionAndGatherToTheWholeMoments()
    {
        var device = TestDevices.Native;
        long whole = Shapes.Sum(d => d.Aggregate(1, (a, b) => a * b)) * 2L * sizeof(float);
        var results = ThreadCommunicator.RunRanks(2, comm =>
        {
            var ps = Parameters(device);
            using var opt = new AdamW(ps, 1e-2, dataParallel: new DataParallel(comm, ShardOptimizerState: true));
            foreach (var (_, p) in ps) SetGrad(device, p, Enumerable.Repeat(0.5f, (int)p.Numel).ToArray());
            opt.ReduceGradients();
            opt.Update();
            using var scope = new TensorScope();
            var moments = opt.Moments().Select(m => (m.Name, m.M.ToArray<float>(), m.V.ToArray<float>())).ToList();
            return (opt.MomentBytes, moments);
        });
        Assert.Equal(whole, results.Sum(r => r.MomentBytes));
        Assert.All(results, r => Assert.True(r.MomentBytes <= whole / 2 + 2 * sizeof(float) * 2));
        // After one step on a summed gradient of ones: m = (1 − β1)·1 and v = (1 − β2)·1 everywhere, on every rank.
        foreach (var (_, moments) in results)
            foreach (var (name, m, v) in moments)
            {
                Assert.All(m, x => Assert.Equal(0.1f, x, 6));
                Assert.All(v, x => Assert.Equal(0.05f, x, 6));
            }
    }
}
