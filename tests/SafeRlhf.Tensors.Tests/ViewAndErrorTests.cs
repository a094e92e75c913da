using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Tensors.Tests;

public sealed class ViewAndErrorTests
{
    private static readonly Device Dev = TestDevices.Reference;
    private static Tensor Iota(params int[] dims) =>
        Tensor.FromArray(Dev, Enumerable.Range(0, (int)new Shape(dims).Numel).Select(i => (double)i).ToArray(), dims);

    [Fact]
    public void ViewsShareStorageAndReadCorrectly()
    {
        var x = Iota(2, 3, 4);
        var t = x.Transpose(0, 2);
        Assert.Same(x.Storage, t.Storage);
        Assert.False(t.IsContiguous);
        Assert.Equal([4, 3, 2], t.Shape.ToArray());
        var tv = t.ToDoubleArray();
        Assert.Equal(1 * 12 + 2 * 4 + 3, tv[(3 * 3 + 2) * 2 + 1]);                 // t[3,2,1] = x[1,2,3]
        var n = x.Narrow(2, 1, 2);
        Assert.Same(x.Storage, n.Storage);
        Assert.Equal(new double[] { 1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22 }, n.ToDoubleArray());
        var r = x.Reshape(6, 4);
        Assert.Same(x.Storage, r.Storage);
        var c = t.Contiguous();
        Assert.NotSame(x.Storage, c.Storage);
        Assert.True(c.IsContiguous);
        Assert.Equal(tv, c.ToDoubleArray());
        var e = Iota(3, 1).Expand(3, 4);
        Assert.Equal(0, e.Shape.Stride(1));
        Assert.Equal(new double[] { 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2 }, e.ToDoubleArray());
    }

    [Fact]
    public void BroadcastingFollowsNumPyRules()
    {
        var a = Iota(3, 1);
        var b = Iota(4);
        var c = a + b;
        Assert.Equal([3, 4], c.Shape.ToArray());
        var v = c.ToDoubleArray();
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) Assert.Equal(i + j, v[i * 4 + j]);
    }

    [Fact]
    public void ShapeMismatchNamesOpAndShapes()
    {
        var ex = Assert.Throws<TensorShapeException>(() => Ops.MatMul(Iota(2, 3), Iota(4, 5)));
        Assert.Contains("MatMul", ex.Message);
        Assert.Contains("[2, 3]", ex.Message);
        Assert.Contains("[4, 5]", ex.Message);
        var ex2 = Assert.Throws<TensorShapeException>(() => Iota(2, 3) + Iota(4));
        Assert.Contains("Add", ex2.Message);
        Assert.Contains("[2, 3]", ex2.Message);
        var ex3 = Assert.Throws<TensorShapeException>(() => Ops.RmsNorm(Iota(2, 3), Iota(4), 1e-5));
        Assert.Contains("RmsNorm", ex3.Message);
        Assert.Throws<TensorShapeException>(() => Iota(2, 3).Reshape(4, 2));
    }

    [Fact]
    public void DtypeMismatchNamesOp()
    {
        var f32 = Tensor.FromArray(Dev, new float[] { 1, 2 }, 2);
        var ex = Assert.Throws<TensorDTypeException>(() => f32 + Iota(2));
        Assert.Contains("Add", ex.Message);
        Assert.Contains("F32", ex.Message);
        Assert.Contains("F64", ex.Message);
        var ex2 = Assert.Throws<TensorDTypeException>(() => Ops.Embedding(Iota(4, 2), Iota(3)));
        Assert.Contains("Embedding", ex2.Message);
    }

    [Fact]
    public void IndexOutOfRangeNamesOp()
    {
        var ex = Assert.Throws<TensorIndexException>(() => Ops.Embedding(Iota(4, 2), Tensor.FromArray(Dev, new[] { 1, 4 }, 2)));
        Assert.Contains("Gather", ex.Message);
        Assert.Contains("4", ex.Message);
        var ex2 = Assert.Throws<TensorIndexException>(() => Ops.CrossEntropy(Iota(2, 3), Tensor.FromArray(Dev, new[] { 0, 7 }, 2)));
        Assert.Contains("CrossEntropy", ex2.Message);
        Assert.Throws<TensorShapeException>(() => Iota(2, 3).Narrow(1, 2, 2));
    }

    [Fact]
    public void BackwardNeedsScalarLossWithHistory()
    {
        var x = Iota(2, 2);
        x.RequiresGrad = true;
        var y = x * x;
        var ex = Assert.Throws<TensorShapeException>(() => y.Backward());
        Assert.Contains("Backward", ex.Message);
        Assert.Contains("[2, 2]", ex.Message);
        using (Autograd.GradMode.NoGrad())
        {
            var z = (x * x).Sum();
            Assert.False(z.RequiresGrad);
            Assert.Throws<InvalidOperationException>(() => z.Backward());
        }
    }

    [Fact]
    public void GradientsAccumulateAcrossBackwardCalls()
    {
        var x = Iota(3);
        x.RequiresGrad = true;
        (x * x).Sum().Backward();
        (x * x).Sum().Backward();
        Assert.Equal(new double[] { 0, 4, 8 }, x.Grad!.ToDoubleArray());
        x.ZeroGrad();
        Assert.Null(x.Grad);
    }

    [Fact]
    public void ScopeDisposesTemporariesAndKeepsResults()
    {
        var x = Iota(4);
        Tensor temp, kept;
        using (var scope = new TensorScope())
        {
            temp = x * x;
            kept = scope.Keep(temp + x);
        }
        Assert.True(temp.IsDisposed);
        Assert.False(kept.IsDisposed);
        Assert.Equal(new double[] { 0, 2, 6, 12 }, kept.ToDoubleArray());
        Assert.False(x.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => temp.ToDoubleArray());
    }

    [Fact]
    public void StorageReturnsWhenLastViewIsDisposed()
    {
        var x = Iota(4);
        var view = x.Reshape(2, 2);
        x.Dispose();
        Assert.False(view.Storage.IsReleased);
        Assert.Equal(3, view.ToDoubleArray()[3]);
        view.Dispose();
        Assert.True(view.Storage.IsReleased);
    }

    [Fact]
    public void RngIsDeterministicAndWellDistributed()
    {
        var a = new Rng(42);
        var b = new Rng(42);
        var c = new Rng(43);
        var xs = Enumerable.Range(0, 1000).Select(_ => a.NextDouble()).ToArray();
        Assert.Equal(xs, Enumerable.Range(0, 1000).Select(_ => b.NextDouble()).ToArray());
        Assert.NotEqual(xs, Enumerable.Range(0, 1000).Select(_ => c.NextDouble()).ToArray());
        var rng = new Rng(1);
        var n = Enumerable.Range(0, 20000).Select(_ => rng.Normal()).ToArray();
        Assert.InRange(n.Average(), -0.03, 0.03);
        Assert.InRange(Math.Sqrt(n.Select(v => v * v).Average()), 0.97, 1.03);
        var state = rng.State;
        double next = rng.NextDouble();
        rng.State = state;
        Assert.Equal(next, rng.NextDouble());
    }
}
