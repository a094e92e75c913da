// Internal entry to the fp32 GEMM, shared by kernels that reduce to matrix products.
#pragma once
#include <cstdint>

namespace sr {
/** c = alpha · op(a) · op(b) + beta · c for one matrix; op(a) is m×k, op(b) is k×n, all row-major with
 *  leading dimensions lda, ldb, ldc. threads ≤ 0 uses the library's thread count. */
void matmul_f32(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a,
              const float* b, int64_t ldb, bool trans_b, float beta, float* c, int64_t ldc, int threads = 0);
}  // namespace sr
