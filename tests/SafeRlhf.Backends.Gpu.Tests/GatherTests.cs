using SafeRlhf.Tensors;

namespace SafeRlhf.Backends.Gpu.Tests;

public sealed class GatherTests(GpuFixture fixture) : GpuTestBase(fixture)
{
    [Fact]
    public void EmbeddingLookupAndItsBackward()
    {
        // rows of a [vocab, dim] table selected by token ids broadcast along dim
        int vocab = 11, dim = 6, n = 7;
        var table = Pair(Random(1, vocab * dim), vocab, dim);
        var ids = PairInt([3, 0, 10, 3, 7, 3, 1], n, 1);
        var y = Zeros(n, dim);
        G.Gather(table.Gpu, ids.Gpu.Expand(n, dim), y.Gpu, 0);
        R.Gather(table.Ref, ids.Ref.Expand(n, dim), y.Ref, 0);
        AssertClose(y, 0, 0, "rows");

        var dy = Pair(Random(2, n * dim), n, dim);
        var dTable = Pair(Random(3, vocab * dim), vocab, dim); // accumulated into; id 3 repeats
        G.ScatterAdd(dy.Gpu, ids.Gpu.Expand(n, dim), dTable.Gpu, 0);
        R.ScatterAdd(dy.Ref, ids.Ref.Expand(n, dim), dTable.Ref, 0);
        AssertClose(dTable, 1e-6, 1e-6, "dTable");
    }

    [Fact]
    public void GatherAlongTheLastAxis()
    {
        // per-row token log-probabilities: logp [3, 9], index [3, 2]
        var logp = Pair(Random(4, 27), 3, 9);
        var idx = PairInt([8, 0, 4, 4, 1, 2], 3, 2);
        var y = Zeros(3, 2);
        G.Gather(logp.Gpu, idx.Gpu, y.Gpu, 1);
        R.Gather(logp.Ref, idx.Ref, y.Ref, 1);
        AssertClose(y, 0, 0, "gathered");

        var dy = Pair(Random(5, 6), 3, 2);
        var dx = Zeros(3, 9);
        G.ScatterAdd(dy.Gpu, idx.Gpu, dx.Gpu, 1);
        R.ScatterAdd(dy.Ref, idx.Ref, dx.Ref, 1);
        AssertClose(dx, 1e-6, 1e-6, "scattered");
    }

    [Fact]
    public void OutOfRangeIndexThrows()
    {
        var x = Pair(Random(6, 12), 4, 3);
        var idx = PairInt([0, 4, 1], 3, 1);
        var y = Zeros(3, 3);
        Assert.Throws<TensorIndexException>(() => G.Gather(x.Gpu, idx.Gpu.Expand(3, 3), y.Gpu, 0));
    }
}
