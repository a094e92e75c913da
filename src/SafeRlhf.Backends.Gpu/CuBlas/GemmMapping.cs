namespace SafeRlhf.Backends.Gpu.CuBlas;

/// <summary>The column-major cuBLAS arguments for a row-major product C[m×n] = op(A)·op(B) over a batch: a row-major
/// matrix is the transpose of the same memory read column-major, so Cᵀ = op(B)ᵀ·op(A)ᵀ and the call swaps the
/// operands (cuBLAS's A is our B) and the sizes (cuBLAS's m is our n), keeping each operand's transpose flag and
/// passing each operand's row stride as its leading dimension. <see cref="RowMajor"/> takes our operands as
/// stored: A [m×k] (or [k×m] when transA), B [k×n] (or [n×k] when transB), C [m×n], each with unit column stride.</summary>
public readonly record struct GemmMapping(int TransA, int TransB, int M, int N, int K, int Lda, long StrideA, int Ldb, long StrideB,
    int Ldc, long StrideC, int Batch)
{
    /// <param name="aRowStride">Elements between rows of A as stored; likewise for B and C (a row stride of 0, for an
    /// operand without columns, is passed as 1: cuBLAS needs a leading dimension ≥ 1 even where it reads nothing).</param>
    /// <param name="aBatchStride">Elements between batch entries of A (0 broadcasts A); likewise for B and C.</param>
    public static GemmMapping RowMajor(int m, int n, int k, int batch, bool transA, bool transB,
        int aRowStride, long aBatchStride, int bRowStride, long bBatchStride, int cRowStride, long cBatchStride) =>
        new(transB ? CuBlasLibrary.OpT : CuBlasLibrary.OpN, transA ? CuBlasLibrary.OpT : CuBlasLibrary.OpN,
            n, m, k, Math.Max(1, bRowStride), bBatchStride, Math.Max(1, aRowStride), aBatchStride, Math.Max(1, cRowStride), cBatchStride, batch);

    /// <summary>QuantizedMatMul's product y [N, M] = x [N, K] · W [M, K]ᵀ with every operand contiguous (cuBLAS's A is W,
    /// its B is x).</summary>
    public static GemmMapping QuantizedMatMul(int n, int m, int k) =>
        RowMajor(n, m, k, 1, transA: false, transB: true, k, 0, k, 0, m, 0);

    /// <summary>QuantizedMatMulBackward's product dx [N, K] = dy [N, M] · W [M, K] with every operand contiguous (cuBLAS's
    /// A is W, its B is dy).</summary>
    public static GemmMapping QuantizedMatMulBackward(int n, int m, int k) =>
        RowMajor(n, k, m, 1, transA: false, transB: false, m, 0, k, 0, k, 0);

    /// <summary>cuBLAS's argument rules (sizes ≥ 0, batch ≥ 1, lda ≥ max(1, rows of op(A)'s stored matrix), likewise ldb,
    /// ldc ≥ max(1, m)), checked before the call so that a bad mapping names its arguments instead of returning
    /// CUBLAS_STATUS_INVALID_VALUE.</summary>
    public void Validate()
    {
        int aRows = TransA == CuBlasLibrary.OpN ? M : K, bRows = TransB == CuBlasLibrary.OpN ? K : N;
        if (M < 0 || N < 0 || K < 0 || Batch < 1 || Lda < Math.Max(1, aRows) || Ldb < Math.Max(1, bRows) || Ldc < Math.Max(1, M))
            throw new ArgumentException($"cuBLAS GEMM arguments out of range: {this} (needs lda ≥ {Math.Max(1, aRows)}, " +
                $"ldb ≥ {Math.Max(1, bRows)}, ldc ≥ {Math.Max(1, M)}, batch ≥ 1)");
    }

    /// <summary>The BLAS definition evaluated on the host (the oracle for the mapping): column-major
    /// C = op(A)·op(B) + β·C for every batch entry, with cuBLAS's argument order (A is the first operand).</summary>
    public void Reference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, float beta = 0)
    {
        for (int p = 0; p < Batch; p++)
            for (int j = 0; j < N; j++)
                for (int i = 0; i < M; i++)
                {
                    double sum = 0;
                    for (int l = 0; l < K; l++)
                    {
                        float av = TransA == CuBlasLibrary.OpN ? a[(int)(p * StrideA + i + (long)l * Lda)] : a[(int)(p * StrideA + l + (long)i * Lda)];
                        float bv = TransB == CuBlasLibrary.OpN ? b[(int)(p * StrideB + l + (long)j * Ldb)] : b[(int)(p * StrideB + j + (long)l * Ldb)];
                        sum += (double)av * bv;
                    }
                    long at = p * StrideC + i + (long)j * Ldc;
                    c[(int)at] = (float)(sum + beta * c[(int)at]);
                }
    }
}
