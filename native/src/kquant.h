// ggml K-quant super-blocks (Q4_K, Q5_K, Q6_K: 256 weights each), kept as stored under the quantized linear layer.
// The sr_ entry points of dequantize.cpp and quantized_matmul.cpp hand these types to the functions below.
#pragma once
#include <cstdint>

namespace sr {

constexpr int QK_K = 256;

/** Scale and min (6 bits each) of sub-block j (0..7) of the 12 packed bytes of a Q4_K / Q5_K super-block (ggml's
 *  get_scale_min_k4). */
inline void kquant_scale_min(const uint8_t* q, int j, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/** True for SR_Q4_K, SR_Q5_K, SR_Q6_K. */
bool is_kquant(int32_t type);
/** Bytes of one super-block of a K-quant type. */
int64_t kquant_block_bytes(int32_t type);
/** Decodes `blocks` super-blocks into 256·blocks floats (the layout's definition; fp32 arithmetic in ggml's order). */
void kquant_dequantize_row(int32_t type, const void* w, int64_t blocks, float* x);
/** y [n, m] = x [n, k] · wᵀ, w [m, k] K-quant rows (k a multiple of 256): fp32 products of the decoded weights, but
 *  Q4_K and Q6_K below 8 rows go to kquant_matmul_int8 where has_avx512_vnni(). Throws std::bad_alloc. */
void kquant_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** y [n, m] = x [n, k] · wᵀ for Q4_K or Q6_K rows with x quantized to int8 per 32-block (kquant_int8.cpp): the exact
 *  product of the dequantized weights with the rounded activations, up to fp32 order. Needs has_avx512_vnni().
 *  Throws std::bad_alloc. */
void kquant_matmul_int8(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** dx [n, k] = dy [n, m] · w (overwritten). Throws std::bad_alloc. */
void kquant_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k);

}  // namespace sr
