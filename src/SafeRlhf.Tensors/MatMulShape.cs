namespace SafeRlhf.Tensors;

/// <summary>The operand check that every backend's <see cref="IBackend.MatMul"/> makes, written once.</summary>
public static class MatMulShape
{
    /// <summary>(batch, M, N, K) of c [batch, M, N] (+)= op(a) [batch, M, K] · op(b) [batch, K, N]; a
    /// <see cref="TensorShapeException"/> when an operand is not rank 3 or the dims disagree.</summary>
    public static (int Batch, int M, int N, int K) Of(Tensor a, Tensor b, Tensor c, bool transA, bool transB)
    {
        if (a.Rank != 3 || b.Rank != 3 || c.Rank != 3)
            throw new TensorShapeException($"MatMul: operands must be [batch, rows, cols], got a {a.Shape}, b {b.Shape}, c {c.Shape}");
        int batch = c.Dim(0), m = c.Dim(1), n = c.Dim(2);
        int k = transA ? a.Dim(1) : a.Dim(2);
        if (a.Dim(0) != batch || b.Dim(0) != batch || (transA ? a.Dim(2) : a.Dim(1)) != m
            || (transB ? b.Dim(2) : b.Dim(1)) != k || (transB ? b.Dim(1) : b.Dim(2)) != n)
            throw new TensorShapeException($"MatMul: a {a.Shape}{(transA ? "ᵀ" : "")}, b {b.Shape}{(transB ? "ᵀ" : "")}, c {c.Shape}");
        return (batch, m, n, k);
    }
}
