using SafeRlhf.Tensors;

namespace SafeRlhf.Cli.Selftest;

/// <summary>Backend conformance and gradient checks: each op through the autograd layer on the device under test and
/// on the native CPU backend with the same inputs, comparing the outputs and the gradients of every input for a
/// random upstream gradient.</summary>
public sealed class OpConformance(Device device, Device cpu, SelftestReport report)
{
    /// <summary>Operation shapes: tiny ones, or LLaMA-7B widths (dim 4096, hidden 11008, 32 heads × 128, vocab 32000).</summary>
    public sealed record Shapes(string Name, int Rows, int Dim, int Hidden, int Heads, int KvHeads, int HeadDim, int Seq, int Vocab, int DecodeRows)
    {
        public static readonly Shapes Tiny = new("tiny", 6, 64, 96, 4, 2, 8, 5, 50, 3);
        public static readonly Shapes Llama7B = new("llama-7b", 64, 4096, 11008, 32, 32, 128, 512, 32000, 1);
    }

    private delegate Tensor[] Body(Device d, Func<int[], Tensor> input);

    /// <summary>Runs <paramref name="body"/> on both devices with identical seeded inputs (inputs require grad);
    /// backpropagates Σ out·r for a seeded r over the first output; compares outputs and input gradients.</summary>
    private void Check(string name, string shape, double tolerance, Body body, bool backward = true)
    {
        report.Run(name, shape, () =>
        {
            var (outs, grads) = Evaluate(device, body, backward);
            var (refOuts, refGrads) = Evaluate(cpu, body, backward);
            double error = 0;
            for (int i = 0; i < outs.Count; i++) error = Math.Max(error, SelftestReport.ScaledError(outs[i], refOuts[i]));
            for (int i = 0; i < grads.Count; i++) error = Math.Max(error, SelftestReport.ScaledError(grads[i], refGrads[i]));
            string note = backward ? $"{outs.Count} output(s), {grads.Count} gradient(s)" : $"{outs.Count} output(s)";
            return new SelftestRow(name, shape, error <= tolerance, error, tolerance, note);
        });
    }

    private static (List<double[]> Outs, List<double[]> Grads) Evaluate(Device d, Body body, bool backward)
    {
        using var scope = new TensorScope();
        var rng = new Random(17);
        var inputs = new List<Tensor>();
        Tensor Input(int[] dims)
        {
            long n = 1;
            foreach (int x in dims) n *= x;
            var data = new float[n];
            for (long i = 0; i < n; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
            var t = Tensor.FromArray(d, data, dims);
            t.RequiresGrad = backward;
            inputs.Add(t);
            return t;
        }
        var outs = body(d, Input);
        if (backward)
        {
            var first = outs[0];
            var r = new float[first.Numel];
            for (long i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
            Ops.Mul(first, Tensor.FromArray(d, r, first.Shape.ToArray())).Sum().Backward();
        }
        return (outs.Select(o => o.ToArray<double>()).ToList(),
            backward ? inputs.Where(t => t.Grad is not null).Select(t => t.Grad!.ToArray<double>()).ToList() : []);
    }

    public void RunAll(Shapes s)
    {
        string n = s.Name;
        Check("matmul x·wᵀ", $"{n} {s.Rows}x{s.Hidden}x{s.Dim}", 1e-4, (d, x) => [Ops.Linear(x([s.Rows, s.Dim]), x([s.Hidden, s.Dim]))]);
        Check("matmul aᵀ·b (batched)", $"{n} 2x{s.Dim}x{s.Rows}", 1e-4, (d, x) => [Ops.MatMul(x([2, s.Rows, s.Dim]), x([2, s.Rows, s.Seq]), transA: true)]);
        foreach (var dtype in new[] { DType.Q8_0, DType.Q4_0, DType.BF16 })
            foreach (int rows in new[] { s.DecodeRows, s.Rows })
                Check($"quantized linear {dtype}", $"{n} {rows}x{s.Hidden}x{s.Dim}", 1e-4, (d, x) =>
                {
                    // the native CPU kernel quantizes activations to int8 (llama.cpp's scheme), so its oracle here is
                    // the fp32 product with the exactly dequantized weights; the dequantized weights are compared too
                    using var _ = Tensors.Autograd.GradMode.NoGrad();
                    var w = dtype == DType.BF16 ? x([s.Hidden, s.Dim]).Cast(DType.BF16) : Ops.Quantize(x([s.Hidden, s.Dim]), dtype);
                    var wide = dtype == DType.BF16 ? w.Cast(DType.F32) : Ops.Dequantize(w);
                    var input = x([rows, s.Dim]);
                    var y = ReferenceEquals(d, cpu) ? Ops.Linear(input, wide) : Ops.QuantizedMatMul(input, w);
                    return [y, wide];
                }, backward: false);
        Check("rmsnorm", $"{n} {s.Rows}x{s.Dim}", 1e-4, (d, x) => [Ops.RmsNorm(x([s.Rows, s.Dim]), x([s.Dim]), 1e-5)]);
        Check("softmax", $"{n} {s.Rows}x{s.Vocab}", 1e-5, (d, x) => [x([s.Rows, s.Vocab]).Softmax()]);
        Check("swiglu", $"{n} {s.Rows}x{s.Hidden}", 1e-5, (d, x) => [Ops.SwiGlu(x([s.Rows, s.Hidden]), x([s.Rows, s.Hidden]))]);
        Check("rope", $"{n} 1x{s.Seq}x{s.Heads}x{s.HeadDim}", 1e-5, (d, x) =>
            [Ops.Rope(x([1, s.Seq, s.Heads, s.HeadDim]), Tensor.FromArray(d, Enumerable.Range(3, s.Seq).ToArray(), 1, s.Seq), 10000, RopeStyle.Interleaved)]);
        Check("attention (causal, GQA)", $"{n} 1x{s.Seq}x{s.Heads}x{s.HeadDim}", 1e-4, (d, x) =>
            [Ops.Attention(x([1, s.Seq, s.Heads, s.HeadDim]), x([1, s.Seq, s.KvHeads, s.HeadDim]), x([1, s.Seq, s.KvHeads, s.HeadDim]))]);
        Check("attention decode (T=1)", $"{n} 1x1x{s.Heads}x{s.HeadDim} S={s.Seq}", 1e-4, (d, x) =>
            [Ops.Attention(x([1, 1, s.Heads, s.HeadDim]), x([1, s.Seq, s.KvHeads, s.HeadDim]), x([1, s.Seq, s.KvHeads, s.HeadDim]))]);
        Check("cross-entropy", $"{n} {s.Rows}x{s.Vocab}", 1e-5, (d, x) =>
        {
            var targets = Enumerable.Range(0, s.Rows).Select(i => i * 7 % s.Vocab).ToArray();
            targets[^1] = -100;
            return [Ops.CrossEntropy(x([s.Rows, s.Vocab]), Tensor.FromArray(d, targets, s.Rows))];
        });
    }
}
