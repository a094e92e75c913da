namespace SafeRlhf.Tensors;

// Matrix product with optional transposed operands and batch dims.
public static partial class Ops
{
    /// <summary>op(a) · op(b). a [.., M, K] ([.., K, M] if transA); b [.., K, N] ([.., N, K] if transB) with the
    /// same leading dims as a, or b 2-D (a weight shared across the batch). Result [.., M, N].</summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        CheckSame("MatMul", a, b);
        if (a.Rank < 2 || b.Rank < 2)
            throw new TensorShapeException($"MatMul: operands need rank ≥ 2, got {a.Shape} and {b.Shape}");
        int m = transA ? a.Dim(-1) : a.Dim(-2);
        int k = transA ? a.Dim(-2) : a.Dim(-1);
        int kb = transB ? b.Dim(-1) : b.Dim(-2);
        int n = transB ? b.Dim(-2) : b.Dim(-1);
        if (k != kb)
            throw new TensorShapeException($"MatMul: inner dims differ: {a.Shape}{(transA ? "ᵀ" : "")} · {b.Shape}{(transB ? "ᵀ" : "")} ({k} vs {kb})");
        var lead = a.Shape.ToArray()[..^2];
        bool sharedB = b.Rank == 2;
        if (!sharedB && !b.Shape.ToArray()[..^2].SequenceEqual(lead))
            throw new TensorShapeException($"MatMul: batch dims differ: {a.Shape} vs {b.Shape}");
        int batch = (int)new Shape(lead).Numel;
        int[] outDims = [.. lead, m, n];

        Tensor y;
        using (Autograd.GradMode.NoGrad())
        if (sharedB && !transA)
        {
            // Fold the batch into M: one [batch·M, K] · [K, N] product.
            using var a2 = a.Contiguous();
            using var a3 = a2.Reshape(1, batch * m, k);
            using var b3 = b.Contiguous().Reshape(1, b.Dim(0), b.Dim(1));
            y = Output(a.Device, a.DType, outDims);
            using var y3 = y.Reshape(1, batch * m, n);
            a.Backend.MatMul(a3, b3, y3, false, transB, accumulate: false);
        }
        else
        {
            using var a3 = a.Contiguous().Reshape(batch, a.Dim(-2), a.Dim(-1));
            using var bc = b.Contiguous();
            using var b3 = sharedB ? bc.Unsqueeze(0).Expand(batch, b.Dim(0), b.Dim(1)).Contiguous() : bc.Reshape(batch, b.Dim(-2), b.Dim(-1));
            y = Output(a.Device, a.DType, outDims);
            using var y3 = y.Reshape(batch, m, n);
            a.Backend.MatMul(a3, b3, y3, transA, transB, accumulate: false);
        }

        // dA reads b and dB reads a: save only what the inputs that need gradients read (the input activation
        // of a frozen weight is not kept).
        Tensor[] saved = [.. b.RequiresGrad ? [a] : Array.Empty<Tensor>(), .. a.RequiresGrad ? [b] : Array.Empty<Tensor>()];
        return Record("MatMul", y, [a, b], saved, dy =>
        {
            // y = A·B: dA = dy·Bᵀ, dB = Aᵀ·dy; transposed operands swap roles accordingly.
            Tensor? da = null, db = null;
            if (a.RequiresGrad)
            {
                if (!transA) da = MatMul(dy, b, transA: false, transB: !transB);
                else
                {
                    // A shared 2-D b is broadcast over the batch first so both operands are batched.
                    using var bFull = sharedB ? BroadcastView("MatMul", b, [.. lead, b.Dim(0), b.Dim(1)]).Contiguous() : null;
                    da = MatMul(bFull ?? b, dy, transA: transB, transB: true);
                }
            }
            if (b.RequiresGrad)
            {
                if (sharedB)
                {
                    using var a2 = (transA ? a.Transpose(-1, -2) : a).Contiguous().Reshape(batch * m, k);
                    using var dy2 = dy.Contiguous().Reshape(batch * m, n);
                    db = transB ? MatMul(dy2, a2, transA: true) : MatMul(a2, dy2, transA: true);
                }
                else
                {
                    db = transB ? MatMul(dy, a, transA: true, transB: transA) : MatMul(a, dy, transA: !transA);
                }
            }
            return [da, db];
        });
    }

    /// <summary>Linear layer without bias: x [.., in] · wᵀ with w [out, in].</summary>
    public static Tensor Linear(Tensor x, Tensor w) => MatMul(x, w, transB: true);
}
