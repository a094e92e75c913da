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
/** y [n, m] = x [n, k] · wᵀ, w [m, k] K-quant rows (k a multiple of 256). Where has_avx512_vnni(): the activations
 *  rounded to int8 per 32-block, kquant_matmul_int8 below kKQuantGemmRows rows and kquant_gemm from there; elsewhere
 *  fp32 products of the decoded weights. Throws std::bad_alloc. */
void kquant_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** Activation rows from which the int8 K-quant product packs 16 weight rows per register tile (kquant_gemm): at 16 ×
 *  11008 × 4096 the packing cost more than the lanes saved. */
constexpr int64_t kKQuantGemmRows = 32;
/** y [n, m] = x [n, k] · wᵀ for K-quant rows with x quantized to int8 per 32-block, one weight row at a time against
 *  up to 4 activation rows (kquant_int8.cpp, decode): the exact product of the dequantized weights with the rounded
 *  activations, up to fp32 order. Needs has_avx512_vnni(). Throws std::bad_alloc. */
void kquant_matmul_int8(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** The same product with 16 weight rows unpacked per task into column lanes and register tiles of 8 activation rows
 *  (kquant_gemm.cpp, prefill and training forward); also takes the interleaved types. Needs has_avx512_vnni().
 *  Throws std::bad_alloc. */
void kquant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** dx [n, k] = dy [n, m] · w (overwritten). Throws std::bad_alloc. */
void kquant_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k);

// ---- K-quants with the rows interleaved by 16 (SR_Q4_K_X16, SR_Q5_K_X16, SR_Q6_K_X16; kquant_x16.cpp) ----

/** True for SR_Q4_K_X16, SR_Q5_K_X16 and SR_Q6_K_X16. */
bool is_kquant_x16(int32_t type);
/** The file type (SR_Q4_K, SR_Q5_K, SR_Q6_K) of an interleaved K-quant type. */
int32_t kquant_x16_file_type(int32_t type);
/** w [m, k] in the file layout → the interleaved layout of `type` (m a multiple of 16, k of 256; dst as large as src). */
void kquant_interleave_rows(int32_t type, const void* src, void* dst, int64_t m, int64_t k);
/** Row j of interleaved weights w [m, k] in the file layout (k/256 super-blocks). */
void kquant_x16_row(int32_t type, const void* w, int64_t k, int64_t j, uint8_t* row);
/** Super-blocks [s0, s0 + count) of row j of interleaved weights w [m, k] → 256·count floats (the file decoder). */
void kquant_x16_dequantize_row(int32_t type, const void* w, int64_t k, int64_t j, int64_t s0, int64_t count, float* x);
/** y [n, m] = x [n, k] · wᵀ, read in place with int8 activations (AVX-512 VNNI; otherwise the fp32 file-layout
 *  product group by group). Throws std::bad_alloc. */
void kquant_x16_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);
/** dx [n, k] = dy [n, m] · w (overwritten), the weight decoded exactly. Throws std::bad_alloc. */
void kquant_x16_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k);

}  // namespace sr
