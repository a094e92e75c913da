using SafeRlhf.Tensors;
using SafeRlhf.TestSupport;

namespace SafeRlhf.Tensors.Tests;

/// <summary>Each fused op's forward against the same math composed from primitive ops or plain loops.</summary>
public sealed class FusedOpTests
{
    private static readonly Device Dev = TestDevices.Reference;

    private static void Close(Tensor expected, Tensor actual, double tol = 1e-12)
    {
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        var e = expected.ToDoubleArray();
        var a = actual.ToDoubleArray();
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= tol * (1 + Math.Abs(e[i])), $"element {i}: expected {e[i]}, got {a[i]}");
    }

    [Fact]
    public void MatMulMatchesLoops()
    {
        var rng = new Rng(3);
        using var a = rng.NormalTensor(Dev, DType.F64, 0, 1, 3, 4);
        using var b = rng.NormalTensor(Dev, DType.F64, 0, 1, 4, 2);
        var av = a.ToDoubleArray();
        var bv = b.ToDoubleArray();
        var expected = new double[6];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 4; k++) expected[i * 2 + j] += av[i * 4 + k] * bv[k * 2 + j];
        Close(Tensor.FromArray(Dev, expected, 3, 2), Ops.MatMul(a, b));
        Close(Tensor.FromArray(Dev, expected, 3, 2), Ops.MatMul(a.Transpose(0, 1).Contiguous(), b.Transpose(0, 1).Contiguous(), true, true));
    }

    [Fact]
    public void RmsNormMatchesComposition()
    {
        var rng = new Rng(4);
        var x = rng.NormalTensor(Dev, DType.F64, 0, 1, 2, 3, 8);
        var w = rng.NormalTensor(Dev, DType.F64, 1, 0.1, 8);
        var composed = x * x.Square().Mean(-1, keepDim: true).AddScalar(1e-5).Rsqrt() * w;
        Close(composed, Ops.RmsNorm(x, w, 1e-5));
    }

    [Fact]
    public void CrossEntropyMatchesLogSoftmaxGather()
    {
        var rng = new Rng(5);
        var logits = rng.NormalTensor(Dev, DType.F64, 0, 2, 4, 7);
        var targets = Tensor.FromArray(Dev, new[] { 3, 0, -1, 6 }, 4);
        var picked = logits.LogSoftmax().Gather(1, Tensor.FromArray(Dev, new[] { 3, 0, 0, 6 }, 4, 1)).ToDoubleArray();
        double expected = -(picked[0] + picked[1] + picked[3]) / 3;
        Assert.Equal(expected, Ops.CrossEntropy(logits, targets, ignoreIndex: -1).Item(), 12);
    }

    [Fact]
    public void TokenLogProbsMatchLogSoftmaxGather()
    {
        var rng = new Rng(15);
        var logits = rng.NormalTensor(Dev, DType.F64, 0, 3, 5, 9);
        int[] targets = [8, 0, 4, 4, 1];
        var expected = logits.LogSoftmax().Gather(1, Tensor.FromArray(Dev, targets, 5, 1)).Reshape(5);
        Close(expected, Ops.TokenLogProbs(logits, Tensor.FromArray(Dev, targets, 5)), 1e-12);
    }

    [Fact]
    public void SwiGluAndLogSigmoidMatchComposition()
    {
        var rng = new Rng(6);
        var g = rng.NormalTensor(Dev, DType.F64, 0, 3, 5, 4);
        var u = rng.NormalTensor(Dev, DType.F64, 0, 1, 5, 4);
        Close(g.Silu() * u, Ops.SwiGlu(g, u));
        Close(g * g.Sigmoid(), g.Silu());
        var big = g.Scale(30);
        Close(big.Sigmoid().Log(), big.LogSigmoid(), 1e-9);
    }

    [Theory]
    [InlineData(4, 4, 4, 2, null)]
    [InlineData(2, 5, 4, 1, new double[] { 1, 1, 0, 1, 1, 0, 0, 1, 1, 1 })]
    [InlineData(3, 3, 2, 2, new double[] { 0, 1, 1, 1, 1, 1 })]
    public void AttentionMatchesMaskedSoftmaxComposition(int t, int s, int h, int hkv, double[]? maskValues)
    {
        const int B = 2, D = 4;
        var rng = new Rng(7);
        var q = rng.NormalTensor(Dev, DType.F64, 0, 1, B, t, h, D);
        var k = rng.NormalTensor(Dev, DType.F64, 0, 1, B, s, hkv, D);
        var v = rng.NormalTensor(Dev, DType.F64, 0, 1, B, s, hkv, D);
        var mask = maskValues is null ? null : Tensor.FromArray(Dev, maskValues, B, s);

        // Composition: repeat KV heads, scores = q·kᵀ/√D, −∞ outside the causal window or on padding, softmax, ·v.
        var qh = q.Permute(0, 2, 1, 3);                                    // [B, H, T, D]
        var kh = RepeatHeads(k, h / hkv).Permute(0, 2, 1, 3);              // [B, H, S, D]
        var vh = RepeatHeads(v, h / hkv).Permute(0, 2, 1, 3);
        var scores = Ops.MatMul(qh.Contiguous(), kh.Contiguous(), transB: true).Scale(1 / Math.Sqrt(D));
        var allowed = new double[B * t * s];
        for (int b = 0; b < B; b++)
            for (int i = 0; i < t; i++)
                for (int j = 0; j < s; j++)
                    allowed[(b * t + i) * s + j] = j <= s - t + i && (maskValues is null || maskValues[b * s + j] != 0) ? 1 : 0;
        var allow = Tensor.FromArray(Dev, allowed, B, 1, t, s);
        var masked = Ops.Where(allow, scores, Ops.Full(Dev, DType.F64, -1e300, 1));
        // A query that sees no key at all outputs 0 (the documented convention), not a uniform average.
        var seesAny = Ops.Compare(BinaryOp.Greater, allow.Sum(-1, keepDim: true), Ops.Full(Dev, DType.F64, 0, 1));
        var probs = masked.Softmax() * seesAny;
        var expected = Ops.MatMul(probs, vh.Contiguous()).Permute(0, 2, 1, 3).Contiguous();
        Close(expected, Ops.Attention(q, k, v, mask), 1e-12);
    }

    private static Tensor RepeatHeads(Tensor x, int groups)
    {
        // [B, S, Hkv, D] → [B, S, Hkv·groups, D] with each KV head repeated for its group of query heads.
        int b = x.Dim(0), s = x.Dim(1), hkv = x.Dim(2), d = x.Dim(3);
        return x.Unsqueeze(3).Expand(b, s, hkv, groups, d).Reshape(b, s, hkv * groups, d);
    }

    [Fact]
    public void RopeStylesAgreeUnderPairPermutation()
    {
        // Interleaved pairs (2i, 2i+1) and half pairs (i, i + D/2) are the same rotation after permuting dims.
        var rng = new Rng(8);
        const int D = 6;
        var x = rng.NormalTensor(Dev, DType.F64, 0, 1, 1, 3, 2, D);
        var pos = Tensor.FromArray(Dev, new[] { 0, 4, 9 }, 1, 3);
        int[] toHalf = [0, 2, 4, 1, 3, 5];                                  // half layout position → interleaved index
        var perm = Tensor.FromArray(Dev, Enumerable.Range(0, 6).SelectMany(_ => toHalf).ToArray(), 1, 3, 2, D);
        var xHalf = x.Gather(3, perm);
        var viaInterleaved = Ops.Rope(x, pos, 10000, RopeStyle.Interleaved).Gather(3, perm);
        Close(viaInterleaved, Ops.Rope(xHalf, pos, 10000, RopeStyle.Half));

        // Position 0 is the identity; the inverse undoes the rotation.
        var zero = Tensor.FromArray(Dev, new[] { 0, 0, 0 }, 1, 3);
        Close(x, Ops.Rope(x, zero, 10000, RopeStyle.Interleaved));
    }

    [Fact]
    public void QuantizeRoundTripIsCloseAndQ8BeatsQ4()
    {
        var rng = new Rng(9);
        var x = rng.NormalTensor(Dev, DType.F32, 0, 1, 4, 64);
        var xs = x.ToDoubleArray();
        double Nmse(DType dtype)
        {
            var back = Ops.Dequantize(Ops.Quantize(x, dtype)).ToDoubleArray();
            double err = 0, norm = 0;
            for (int i = 0; i < xs.Length; i++) { err += (back[i] - xs[i]) * (back[i] - xs[i]); norm += xs[i] * xs[i]; }
            return err / norm;
        }
        double q8 = Nmse(DType.Q8_0), q4 = Nmse(DType.Q4_0);
        Assert.InRange(q8, 1e-7, 1e-3);
        Assert.InRange(q4, 1e-4, 2e-2);
        Assert.True(q8 < q4 / 10, $"Q8_0 nmse {q8} should be far below Q4_0 nmse {q4}");
    }

    [Fact]
    public void QuantizedMatMulMatchesDequantizedMatMul()
    {
        var rng = new Rng(10);
        var w = Ops.Quantize(rng.NormalTensor(Dev, DType.F32, 0, 1, 3, 64), DType.Q4_0);
        var x = rng.NormalTensor(Dev, DType.F32, 0, 1, 2, 5, 64);
        x.RequiresGrad = true;
        var y = Ops.QuantizedMatMul(x, w);
        Close(Ops.Linear(x, Ops.Dequantize(w)), y, 1e-5);
        y.Sum().Backward();
        var expectedDx = Ops.Dequantize(w).Sum(0, keepDim: true).Expand(2, 5, 64).Contiguous();
        Close(expectedDx, x.Grad!, 1e-5);
    }
}
