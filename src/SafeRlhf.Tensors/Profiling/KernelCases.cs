using System.Globalization;

namespace SafeRlhf.Tensors.Profiling;

/// <summary>One benchmark case: a kernel at one shape with its napkin-math FLOP and byte counts, whether it is
/// compute bound (measured against the FMA peak) or memory bound (against the bandwidth), and a setup that
/// allocates its inputs and returns the launch to time.</summary>
public sealed record KernelCase(string Kernel, string Shape, double Flops, double Bytes, bool ComputeBound, Func<Action> Setup);

/// <summary>Model dimensions a benchmark run uses.</summary>
public sealed record KernelShapes(int Dim, int Hidden, int Heads, int HeadDim, int Vocab, int Seq, int LongSeq, int Gemm, int AdamRows,
    bool SkipLongAttentionBackward = false)
{
    /// <summary>LLaMA-7B: dim 4096, hidden 11008, 32 heads × 128, vocab 32000, sequence 512 / 2048, GEMM 4096³.</summary>
    public static readonly KernelShapes Llama7B = new(4096, 11008, 32, 128, 32000, 512, 2048, 4096, 11008);
    /// <summary>LLaMA-7B widths with shorter sequences and a 1024³ GEMM, for quick runs.</summary>
    public static readonly KernelShapes Llama7BQuick = new(4096, 11008, 32, 128, 32000, 128, 256, 1024, 1024, SkipLongAttentionBackward: true);
    /// <summary>Tiny shapes for smoke runs on slow devices.</summary>
    public static readonly KernelShapes Smoke = new(128, 344, 4, 32, 512, 32, 64, 128, 64);
    public static readonly KernelShapes SmokeQuick = new(64, 172, 2, 32, 256, 16, 32, 64, 16);
}

/// <summary>One measured kernel: best time, the rates derived from its FLOP and byte counts, and the percentage of
/// the device ceiling measured in the same run; <see cref="Ceiling"/> names that ceiling ("fma", "vnni", "dram",
/// "cache"; "" where the runner names none: "peak"). Printed as a table line or one JSON object.</summary>
public sealed record KernelBenchResult(string Kernel, string Shape, string Device, int Threads, double Seconds,
    double Gflops, double Gbps, double PercentOfPeak, string Ceiling = "")
{
    public string ToJson()
    {
        string ceiling = Ceiling.Length > 0 ? $",\"ceiling\":\"{Ceiling}\"" : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{{\"kernel\":\"{Kernel}\",\"shape\":\"{Shape}\",\"device\":\"{Device}\",\"threads\":{Threads},\"seconds\":{Seconds:G6},\"gflops\":{Gflops:G6},\"gbps\":{Gbps:G6},\"percent_of_peak\":{PercentOfPeak:G4}{ceiling}}}");
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Kernel,-26} {Shape,-26} {Seconds * 1e3,10:F3} ms {Gflops,9:F1} GFLOP/s {Gbps,8:F1} GB/s {PercentOfPeak,6:F1} % of {(Ceiling.Length > 0 ? Ceiling : "peak")}");
}

/// <summary>The kernel benchmark cases shared by the CPU (<c>KernelBench</c>) and GPU (<c>GpuKernelBench</c>)
/// runners: every hot kernel of a LLaMA training step, called through <see cref="IBackend"/>.</summary>
public static class KernelCases
{
    /// <summary>Kernel names, for the --kernel filter.</summary>
    public static IReadOnlyList<string> Kernels { get; } =
    [
        "matmul_f32", "rmsnorm_fwd", "rmsnorm_bwd", "rope", "swiglu_fwd", "swiglu_bwd", "softmax_fwd", "softmax_bwd",
        "cross_entropy_fwd", "cross_entropy_bwd", "adamw", "attention_fwd", "attention_bwd", "quantize_q8_0",
        "quantized_matmul_q8_0", "quantized_matmul_q4_0", "quantized_matmul_q4_k", "quantized_matmul_q6_k", "quantized_matmul_q4_kx16", "quantized_matmul_q6_kx16", "quantized_matmul_bwd_q8_0", "quantized_matmul_bf16", "quantized_matmul_bwd_bf16",
    ];

    /// <summary>The cases for a device at the given shapes; each case's Setup allocates its tensors (in the caller's
    /// scope) and returns the launch to time.</summary>
    public static IEnumerable<KernelCase> For(Device d, KernelShapes s)
    {
        var rng = new Rng(1);   // one stream, drawn as the cases are set up in this order
        return MatMulCases(d, s, rng).Concat(RowCases(d, s, rng)).Concat(LossAndStepCases(d, s, rng))
            .Concat(AttentionCases(d, s, rng))
            .Concat(QuantizedCases(d, s, rng)).Concat(Bf16Cases(d, s, rng));
    }

    /// <summary>fp32 GEMMs: square, the FFN projection forward and weight gradient, and a decode GEMV.</summary>
    private static IEnumerable<KernelCase> MatMulCases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, hidden = s.Hidden, heads = s.Heads, headDim = s.HeadDim, vocab = s.Vocab, seq = s.Seq, g = s.Gemm;
        yield return new("matmul_f32", $"{g}x{g}x{g}", 2.0 * g * g * g, 3.0 * 4 * g * g, true, () =>
        {
            var x = Rand(d, rng, 1, g, g); var w = Rand(d, rng, 1, g, g); var y = Tensor.Zeros(d, DType.F32, 1, g, g);
            return () => b.MatMul(x, w, y, false, false, false);
        });
        yield return new("matmul_f32", $"{seq}x{hidden}x{dim} (w1·xᵀ)", 2.0 * seq * hidden * dim, 4.0 * (seq * dim + hidden * dim + seq * hidden), true, () =>
        {
            var x = Rand(d, rng, 1, seq, dim); var w = Rand(d, rng, 1, hidden, dim); var y = Tensor.Zeros(d, DType.F32, 1, seq, hidden);
            return () => b.MatMul(x, w, y, false, true, false);
        });
        yield return new("matmul_f32", $"{dim}x{hidden}x{seq} (dW = dyᵀ·x)", 2.0 * seq * hidden * dim, 4.0 * (seq * dim + hidden * dim + seq * hidden), true, () =>
        {
            var dy = Rand(d, rng, 1, seq, dim); var x = Rand(d, rng, 1, seq, hidden); var dw = Tensor.Zeros(d, DType.F32, 1, dim, hidden);
            return () => b.MatMul(dy, x, dw, true, false, false);
        });
        yield return new("matmul_f32", $"1x{dim}x{dim} (decode)", 2.0 * dim * dim, 4.0 * dim * dim, false, () =>
        {
            var x = Rand(d, rng, 1, 1, dim); var w = Rand(d, rng, 1, dim, dim); var y = Tensor.Zeros(d, DType.F32, 1, 1, dim);
            return () => b.MatMul(x, w, y, false, true, false);
        });
    }

    /// <summary>Row-wise ops at the activation shapes: RMSNorm, RoPE, SwiGLU and softmax.</summary>
    private static IEnumerable<KernelCase> RowCases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, hidden = s.Hidden, heads = s.Heads, headDim = s.HeadDim, vocab = s.Vocab, seq = s.Seq, g = s.Gemm;
        long act = (long)seq * dim;
        yield return new("rmsnorm_fwd", $"{seq}x{dim}", 4.0 * act, 4.0 * 2 * act, false, () =>
        {
            var x = Rand(d, rng, seq, dim); var w = Rand(d, rng, dim); var y = Tensor.Zeros(d, DType.F32, seq, dim); var r = Tensor.Zeros(d, DType.F32, seq);
            return () => b.RmsNorm(x, w, y, r, 1e-5);
        });
        yield return new("rmsnorm_bwd", $"{seq}x{dim}", 10.0 * act, 4.0 * 3 * act, false, () =>
        {
            var x = Rand(d, rng, seq, dim); var w = Rand(d, rng, dim); var r = rng.UniformTensor(d, DType.F32, 0.5, 2, seq);
            var dy = Rand(d, rng, seq, dim); var dx = Tensor.Zeros(d, DType.F32, seq, dim); var dw = Tensor.Zeros(d, DType.F32, dim);
            return () => b.RmsNormBackward(x, w, r, dy, dx, dw);
        });
        yield return new("rope", $"1x{seq}x{heads}x{headDim}", 6.0 * seq * heads * headDim, 4.0 * 2 * seq * heads * headDim, false, () =>
        {
            var x = Rand(d, rng, 1, seq, heads, headDim); var y = Tensor.Zeros(d, DType.F32, 1, seq, heads, headDim);
            var pos = Tensor.FromArray(d, Enumerable.Range(0, seq).ToArray(), 1, seq);
            return () => b.Rope(x, pos, y, 10000.0, RopeStyle.Interleaved, false);
        });
        long hid = (long)seq * hidden;
        yield return new("swiglu_fwd", $"{seq}x{hidden}", 20.0 * hid, 4.0 * 3 * hid, false, () =>
        {
            var gt = Rand(d, rng, seq, hidden); var up = Rand(d, rng, seq, hidden); var y = Tensor.Zeros(d, DType.F32, seq, hidden);
            return () => b.SwiGlu(gt, up, y);
        });
        yield return new("swiglu_bwd", $"{seq}x{hidden}", 30.0 * hid, 4.0 * 5 * hid, false, () =>
        {
            var gt = Rand(d, rng, seq, hidden); var up = Rand(d, rng, seq, hidden); var dy = Rand(d, rng, seq, hidden);
            var dg = Tensor.Zeros(d, DType.F32, seq, hidden); var du = Tensor.Zeros(d, DType.F32, seq, hidden);
            return () => b.SwiGluBackward(gt, up, dy, dg, du);
        });
        long att = (long)heads * seq * seq;
        yield return new("softmax_fwd", $"{heads * seq}x{seq}", 20.0 * att, 4.0 * 2 * att, false, () =>
        {
            var x = Rand(d, rng, heads * seq, seq); var y = Tensor.Zeros(d, DType.F32, heads * seq, seq);
            return () => b.Softmax(x, y, false);
        });
        yield return new("softmax_bwd", $"{heads * seq}x{seq}", 4.0 * att, 4.0 * 3 * att, false, () =>
        {
            var y = Rand(d, rng, heads * seq, seq); var dy = Rand(d, rng, heads * seq, seq); var dx = Tensor.Zeros(d, DType.F32, heads * seq, seq);
            return () => b.SoftmaxBackward(y, dy, dx, false);
        });
    }

    /// <summary>The loss and the optimizer step: cross-entropy forward and backward at the vocabulary width, AdamW.</summary>
    private static IEnumerable<KernelCase> LossAndStepCases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, vocab = s.Vocab, seq = s.Seq;
        long logits = (long)seq * vocab;
        yield return new("cross_entropy_fwd", $"{seq}x{vocab}", 20.0 * logits, 4.0 * logits, false, () =>
        {
            var x = Rand(d, rng, seq, vocab); var t = Tensor.FromArray(d, Enumerable.Range(0, seq).Select(i => i * 61 % vocab).ToArray(), seq);
            var l = Tensor.Zeros(d, DType.F32, seq); var e = Tensor.Zeros(d, DType.F32, seq);
            return () => b.CrossEntropy(x, t, l, e, -100);
        });
        yield return new("cross_entropy_bwd", $"{seq}x{vocab}", 20.0 * logits, 4.0 * 2 * logits, false, () =>
        {
            var x = Rand(d, rng, seq, vocab); var t = Tensor.FromArray(d, Enumerable.Range(0, seq).Select(i => i * 61 % vocab).ToArray(), seq);
            var e = rng.UniformTensor(d, DType.F32, 10, 11, seq); var dl = Rand(d, rng, seq); var dx = Tensor.Zeros(d, DType.F32, seq, vocab);
            return () => b.CrossEntropyBackward(x, t, e, dl, dx, -100);
        });
        long p = (long)dim * s.AdamRows;
        yield return new("adamw", $"{p} params", 15.0 * p, 4.0 * 7 * p, false, () =>
        {
            var w = Rand(d, rng, (int)p); var gr = Rand(d, rng, (int)p); var m = Tensor.Zeros(d, DType.F32, (int)p); var v = Tensor.Zeros(d, DType.F32, (int)p);
            return () => b.AdamW(w, gr, m, v, 1e-4, 0.9, 0.95, 1e-8, 0.1, 1);
        });
    }

    /// <summary>Causal attention forward and backward at the training and the long sequence length.</summary>
    private static IEnumerable<KernelCase> AttentionCases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, hidden = s.Hidden, heads = s.Heads, headDim = s.HeadDim, vocab = s.Vocab, seq = s.Seq, g = s.Gemm;
        foreach (int t in new[] { seq, s.LongSeq })
        {
            // causal: half the T×S score matrix; forward = QKᵀ + PV, backward ≈ 2.5× forward
            double fwd = 2.0 * 2 * heads * headDim * ((double)t * t / 2);
            long qkv = (long)t * heads * headDim;
            yield return new("attention_fwd", $"1x{t}x{heads}x{headDim}", fwd, 4.0 * 4 * qkv, true, () =>
            {
                var q = Rand(d, rng, 1, t, heads, headDim); var k = Rand(d, rng, 1, t, heads, headDim); var v = Rand(d, rng, 1, t, heads, headDim);
                var o = Tensor.Zeros(d, DType.F32, 1, t, heads, headDim); var lse = Tensor.Zeros(d, DType.F32, 1, heads, t);
                return () => b.Attention(q, k, v, null, o, lse, 1.0 / Math.Sqrt(headDim));
            });
            if (t != seq && s.SkipLongAttentionBackward) continue;
            yield return new("attention_bwd", $"1x{t}x{heads}x{headDim}", 2.5 * fwd, 4.0 * 9 * qkv, true, () =>
            {
                var q = Rand(d, rng, 1, t, heads, headDim); var k = Rand(d, rng, 1, t, heads, headDim); var v = Rand(d, rng, 1, t, heads, headDim);
                var o = Tensor.Zeros(d, DType.F32, 1, t, heads, headDim); var lse = Tensor.Zeros(d, DType.F32, 1, heads, t);
                b.Attention(q, k, v, null, o, lse, 1.0 / Math.Sqrt(headDim));
                var dO = Rand(d, rng, 1, t, heads, headDim);
                var dq = Tensor.Zeros(d, DType.F32, 1, t, heads, headDim); var dk = Tensor.Zeros(d, DType.F32, 1, t, heads, headDim);
                var dv = Tensor.Zeros(d, DType.F32, 1, t, heads, headDim);
                return () => b.AttentionBackward(q, k, v, null, o, lse, dO, dq, dk, dv, 1.0 / Math.Sqrt(headDim));
            });
        }
    }

    /// <summary>Quantize, and QuantizedMatMul with Q8_0, Q4_0 and K-quant weights (forward, and the Q8_0 backward).</summary>
    private static IEnumerable<KernelCase> QuantizedCases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, hidden = s.Hidden, heads = s.Heads, headDim = s.HeadDim, vocab = s.Vocab, seq = s.Seq, g = s.Gemm;
        yield return new("quantize_q8_0", $"{dim}x{dim}", 3.0 * dim * dim, 4.0 * dim * dim + 34.0 / 32 * dim * dim, false, () =>
        {
            var x = Rand(d, rng, dim, dim); var q = Tensor.Zeros(d, DType.Q8_0, dim, dim);
            return () => b.Quantize(x, q);
        });
        // Quantized weights at the FFN shape (w1: hidden × dim), like the BF16 cases below.
        foreach (var (dtype, name) in new[] { (DType.Q8_0, "quantized_matmul_q8_0"), (DType.Q4_0, "quantized_matmul_q4_0") })
        {
            double wBytes = (dtype == DType.Q8_0 ? 34.0 : 18.0) / 32 * hidden * dim;
            foreach (int n in new[] { 1, seq })
                yield return new(name, $"{n}x{hidden}x{dim}", 2.0 * n * hidden * dim, wBytes + 4.0 * n * (dim + hidden), n > 1, () =>
                {
                    var w = Tensor.Zeros(d, dtype, hidden, dim);
                    using (var wf = Rand(d, rng, hidden, dim)) b.Quantize(wf, w);
                    var x = Rand(d, rng, n, dim); var y = Tensor.Zeros(d, DType.F32, n, hidden);
                    return () => b.QuantizedMatMul(x, w, y);
                });
        }
        // K-quant weights (read from GGUF files, encoded here) where the width is a whole number of 256-weight super-blocks;
        // the same weights with their rows interleaved by 16 where the backend computes with that layout.
        bool interleaves = b is IRowInterleaving { InterleavesRows: true } && hidden % DTypeInfo.InterleavedRows == 0;
        if (dim % DTypeInfo.KQuantBlock == 0)
            foreach (var (dtype, name, interleaved) in new[] { (DType.Q4_K, "quantized_matmul_q4_k", false), (DType.Q6_K, "quantized_matmul_q6_k", false),
                         (DType.Q4_K, "quantized_matmul_q4_kx16", true), (DType.Q6_K, "quantized_matmul_q6_kx16", true) })
            {
                if (interleaved && !interleaves) continue;
                double wBytes = (double)dtype.BlockBytes() / DTypeInfo.KQuantBlock * hidden * dim;
                foreach (int n in new[] { 1, seq })
                    yield return new(name, $"{n}x{hidden}x{dim}", 2.0 * n * hidden * dim, wBytes + 4.0 * n * (dim + hidden), n > 1, () =>
                    {
                        var blocks = new byte[dtype.ByteCount((long)hidden * dim)];
                        using (var wf = Rand(d, rng, hidden, dim)) KQuantEncoder.QuantizeRow(dtype, wf.ToArray<float>(), blocks);
                        var w = Tensor.FromBytes(d, dtype, blocks, hidden, dim);
                        if (interleaved)
                        {
                            var packed = Tensor.Zeros(d, dtype.Interleaved(), hidden, dim);
                            ((IRowInterleaving)b).InterleaveRows(w, packed);
                            w = packed;
                        }
                        var x = Rand(d, rng, n, dim); var y = Tensor.Zeros(d, DType.F32, n, hidden);
                        return () => b.QuantizedMatMul(x, w, y);
                    });
            }
        yield return new("quantized_matmul_bwd_q8_0", $"{seq}x{dim}x{dim}", 2.0 * seq * dim * dim, 34.0 / 32 * dim * dim + 8.0 * seq * dim, true, () =>
        {
            var w = Tensor.Zeros(d, DType.Q8_0, dim, dim);
            using (var wf = Rand(d, rng, dim, dim)) b.Quantize(wf, w);
            var dy = Rand(d, rng, seq, dim); var dx = Tensor.Zeros(d, DType.F32, seq, dim);
            return () => b.QuantizedMatMulBackward(dy, w, dx);
        });
    }

    /// <summary>QuantizedMatMul with BF16-stored weights at the FFN shape (w1: hidden × dim): GEMV against the bandwidth, GEMM against the FMA peak.</summary>
    private static IEnumerable<KernelCase> Bf16Cases(Device d, KernelShapes s, Rng rng)
    {
        var b = d.Backend;
        int dim = s.Dim, hidden = s.Hidden, heads = s.Heads, headDim = s.HeadDim, vocab = s.Vocab, seq = s.Seq, g = s.Gemm;
        foreach (int n in new[] { 1, seq })
            yield return new("quantized_matmul_bf16", $"{n}x{hidden}x{dim}", 2.0 * n * hidden * dim, 2.0 * hidden * dim + 4.0 * n * (dim + hidden), n > 1, () =>
            {
                var w = Bf16Weight(d, rng, hidden, dim);
                var x = Rand(d, rng, n, dim); var y = Tensor.Zeros(d, DType.F32, n, hidden);
                return () => b.QuantizedMatMul(x, w, y);
            });
        yield return new("quantized_matmul_bwd_bf16", $"{seq}x{hidden}x{dim}", 2.0 * seq * hidden * dim, 2.0 * hidden * dim + 4.0 * seq * (dim + hidden), true, () =>
        {
            var w = Bf16Weight(d, rng, hidden, dim);
            var dy = Rand(d, rng, seq, hidden); var dx = Tensor.Zeros(d, DType.F32, seq, dim);
            return () => b.QuantizedMatMulBackward(dy, w, dx);
        });
    }

    /// <summary>A BF16 weight [rows, cols] with uniform values in [−1, 1).</summary>
    public static Tensor Bf16Weight(Device d, Rng rng, int rows, int cols)
    {
        var w = Tensor.Zeros(d, DType.BF16, rows, cols);
        using var wf = Rand(d, rng, rows, cols);
        d.Backend.Copy(wf, w);
        return w;
    }

    private static Tensor Rand(Device d, Rng rng, params int[] dims) => rng.UniformTensor(d, DType.F32, -1, 1, dims);
}
