// The BF16 weights of QuantizedMatMul (bf16_matmul.cpp): quantized_matmul.cpp's sr_ entry points hand SR_BF16 and
// SR_BF16_DOT to the functions below.
#pragma once
#include <cstdint>

namespace sr {

/** AVX-512 BF16 (vdpbf16ps), which SR_BF16_DOT needs. */
bool has_avx512_bf16();
/** y [n, m] = x [n, k] · wᵀ, w [m, k] bf16 (n, m, k > 0): exact widening of w and fp32 products, or with `dot`
 *  vdpbf16ps on x rounded to bf16 (the caller checks has_avx512_bf16). Throws std::bad_alloc. */
void bf16_matmul(bool dot, const float* x, const uint16_t* w, float* y, int64_t n, int64_t m, int64_t k);
/** dx [n, k] = dy [n, m] · w with w widened exactly (dx overwritten; n, m, k > 0). Throws std::bad_alloc. */
void bf16_matmul_backward(const float* dy, const uint16_t* w, float* dx, int64_t n, int64_t m, int64_t k);

}  // namespace sr
