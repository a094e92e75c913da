using static SafeRlhf.Tensors.Tests.Conformance.Conformance;

namespace SafeRlhf.Tensors.Tests.Conformance;

/// <summary>Copy (strided either side, dtype conversions), Fill, Gather and ScatterAdd: each written once and run on every
/// backend against values computed here.</summary>
[Collection(Conformance.SharedIlgpuDevice)]
public sealed class CopyAndGatherConformanceTests
{
    public static TheoryData<string, DType> CopyCases()
    {
        var data = new TheoryData<string, DType>();
        foreach (var b in BackendNames) foreach (var t in new[] { DType.F32, DType.F64, DType.I32 }) data.Add(b, t);
        return data;
    }

    /// <summary>A transposed F32 view copied (and converted) into a packed tensor, then into a strided window of a larger one.</summary>
    [Theory]
    [MemberData(nameof(CopyCases))]
    public void CopyThroughStridedViewsAndConverts(string backend, DType to)
    {
        var d = Device(backend);
        foreach (var (rows, cols) in new[] { (0, 3), (1, 1), (3, 5), (7, 9) })
        {
            using var scope = new TensorScope();
            var xs = Values(9, rows * cols, -40, 40, halves: true);            // halves round-trip I32 only as rounded values
            var x = Make(d, xs, rows, cols);
            var t = x.Transpose(0, 1);                                          // [cols, rows] strided
            var y = Tensor.Zeros(d, to, cols, rows);
            d.Backend.Copy(t, y);
            var expected = new double[cols * rows];
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < rows; r++)
                    expected[c * rows + r] = to == DType.I32 ? Math.Round(xs[r * cols + c], MidpointRounding.ToEven) : xs[r * cols + c];
            AssertClose(expected, y, $"copy {rows}x{cols} → {to}", 0, 0);

            var big = Tensor.Zeros(d, DType.F32, cols + 1, rows + 2);
            var window = big.Narrow(1, 1, rows).Narrow(0, 1, cols);             // strided destination
            d.Backend.Copy(t, window);
            var bigExpected = new double[(cols + 1) * (rows + 2)];
            for (int c = 0; c < cols; c++)
                for (int r = 0; r < rows; r++)
                    bigExpected[(c + 1) * (rows + 2) + r + 1] = xs[r * cols + c];
            AssertClose(bigExpected, big, $"copy into window {rows}x{cols}", 0, 0);
        }
    }

    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void FillSetsEveryElement(string backend)
    {
        var d = Device(backend);
        foreach (var dims in Shapes)
        {
            using var scope = new TensorScope();
            var y = Tensor.Zeros(d, DType.F32, dims);
            d.Backend.Fill(y, -1.5);
            AssertClose(Enumerable.Repeat(-1.5, (int)Numel(dims)).ToArray(), y, "fill", 0, 0);
        }
    }

    /// <summary>The embedding pattern (one id per row, repeated ids accumulate) and a gather along the last axis.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void GatherAndScatterAdd(string backend)
    {
        var d = Device(backend);
        foreach (var (vocab, dim, ids) in new[] { (5, 7, new[] { 3, 0, 3, 4, 3 }), (4, 1, new[] { 1, 1 }), (3, 5, Array.Empty<int>()) })
        {
            using var scope = new TensorScope();
            var table = Values(10, vocab * dim);
            var index = ids.SelectMany(id => Enumerable.Repeat(id, dim)).ToArray();
            var y = Tensor.Zeros(d, DType.F32, ids.Length, dim);
            d.Backend.Gather(Make(d, table, vocab, dim), Tensor.FromArray(d, index, ids.Length, dim), y, 0);
            AssertClose(index.Select((id, k) => (double)(float)table[id * dim + k % dim]).ToArray(), y, $"gather rows {vocab}x{dim}", 0, 0);

            var g = Values(11, ids.Length * dim);
            var dx = Tensor.Zeros(d, DType.F32, vocab, dim);
            d.Backend.ScatterAdd(Make(d, g, ids.Length, dim), Tensor.FromArray(d, index, ids.Length, dim), dx, 0);
            var expected = new double[vocab * dim];
            for (int k = 0; k < index.Length; k++) expected[index[k] * dim + k % dim] += (float)g[k];
            AssertClose(expected, dx, $"scatter-add rows {vocab}x{dim}", 1e-6, 1e-6);
        }

        using (new TensorScope())
        {
            // along the last axis: y[r, j] = x[r, index[r, j]]
            var xs = Values(12, 3 * 6);
            int[] idx = [5, 0, 5, 2, 2, 1, 0, 4, 4];
            var yl = Tensor.Zeros(d, DType.F32, 3, 3);
            d.Backend.Gather(Make(d, xs, 3, 6), Tensor.FromArray(d, idx, 3, 3), yl, 1);
            AssertClose(idx.Select((v, k) => (double)(float)xs[k / 3 * 6 + v]).ToArray(), yl, "gather last axis", 0, 0);
            var gl = Values(13, 9);
            var dxl = Tensor.Zeros(d, DType.F32, 3, 6);
            d.Backend.ScatterAdd(Make(d, gl, 3, 3), Tensor.FromArray(d, idx, 3, 3), dxl, 1);
            var expected = new double[18];
            for (int k = 0; k < 9; k++) expected[k / 3 * 6 + idx[k]] += (float)gl[k];
            AssertClose(expected, dxl, "scatter-add last axis", 1e-6, 1e-6);
        }
    }

    /// <summary>An index outside x's extent on the gathered axis fails with a <see cref="TensorIndexException"/> that names
    /// the index and the extent, for Gather and for ScatterAdd.</summary>
    [Theory]
    [MemberData(nameof(Backends), MemberType = typeof(Conformance))]
    public void AnIndexOutOfRangeFails(string backend)
    {
        var d = Device(backend);
        using var scope = new TensorScope();
        var index = Tensor.FromArray(d, new[] { 0, 0, 0, 4, 4, 4, 1, 1, 1 }, 3, 3);
        var y = Tensor.Zeros(d, DType.F32, 3, 3);
        var e = Assert.Throws<TensorIndexException>(() => d.Backend.Gather(Make(d, Values(14, 12), 4, 3), index, y, 0));
        Assert.Contains("index 4 out of range [0, 4)", e.Message);
        var dx = Tensor.Zeros(d, DType.F32, 4, 3);
        e = Assert.Throws<TensorIndexException>(() => d.Backend.ScatterAdd(Make(d, Values(15, 9), 3, 3), index, dx, 0));
        Assert.Contains("index 4 out of range [0, 4)", e.Message);
    }
}
