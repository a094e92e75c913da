// QuantizedMatMul: y = x·wᵀ and dx = dy·w with the weight w kept in a storage type — ggml blocks (Q8_0, Q4_0;
// quant_blocks.h), K-quant super-blocks (Q4_K, Q5_K, Q6_K; kquant.cpp) or BF16 (bf16_matmul.cpp) — and fp32
// activations. For Q8_0 / Q4_0 the activations are quantized to int8 per 32-block on the fly (quant_activations.h)
// and multiplied with int8 dot products: from 32 rows the column-lane GEMM (quant_gemm.cpp); below that the AVX-512
// VNNI register tile (quant_tile.cpp) where the CPU has VNNI and VBMI; otherwise one weight row at a time, here
// (weights stored with their rows interleaved by 16 go to the column-lane product at every row count; the K-quants'
// interleaved types to kquant_x16.cpp)
// (AVX-512 VNNI or AVX2 one block per 256-bit step, or scalar code). The backward dequantizes w panel by panel into
// the fp32 GEMM. The K-quant and BF16 weights pass through the same entry points to their own files.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "bf16_matmul.h"
#include "kquant.h"
#include "panel_backward.h"
#include "parallel.h"
#include "quant_activations.h"
#include "quant_gemm.h"
#include "quant_tile.h"
#include "quant_blocks.h"
#include "status.h"
#include "stream_rows.h"

namespace sr {
namespace {

// ---------------- int8 block dot products: up to 4 activation rows against one weight row ----------------

/** Expands weight block b to 32 int8 values and its scale. */
inline float weight_block(int32_t type, const void* w, int64_t b, int8_t* out) {
  if (type == SR_Q8_0) {
    const BlockQ8* blk = static_cast<const BlockQ8*>(w) + b;
    std::memcpy(out, blk->qs, QK);
    return half_to_float(blk->d);
  }
  const BlockQ4* blk = static_cast<const BlockQ4*>(w) + b;
  for (int j = 0; j < QK / 2; ++j) {
    out[j] = static_cast<int8_t>((blk->qs[j] & 0x0F) - 8);
    out[j + QK / 2] = static_cast<int8_t>((blk->qs[j] >> 4) - 8);
  }
  return half_to_float(blk->d);
}

void dot_scalar(int32_t type, const void* w, int64_t blocks, const ActivationRows& x, float* out) {
  float acc[4] = {};
  int8_t wq[QK];
  for (int64_t b = 0; b < blocks; ++b) {
    float dw = weight_block(type, w, b, wq);
    for (int r = 0; r < x.count; ++r) {
      int32_t s = 0;
      const int8_t* xq = x.q[r] + b * QK;
      for (int j = 0; j < QK; ++j) s += static_cast<int32_t>(xq[j]) * wq[j];
      acc[r] += static_cast<float>(s) * dw * x.d[r][b];
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = acc[r];
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
inline __m256i weight_block_avx2(int32_t type, const void* w, int64_t b, float* dw) {
  if (type == SR_Q8_0) {
    const BlockQ8* blk = static_cast<const BlockQ8*>(w) + b;
    *dw = _cvtsh_ss(blk->d);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs));
  }
  const BlockQ4* blk = static_cast<const BlockQ4*>(w) + b;
  *dw = _cvtsh_ss(blk->d);
  __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs));
  __m128i lo = _mm_and_si128(packed, _mm_set1_epi8(0x0F));
  __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F));
  __m256i q = _mm256_set_m128i(hi, lo);
  return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void dot_avx2(int32_t type, const void* w, int64_t blocks, const ActivationRows& x, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < blocks; ++b) {
    float dw;
    __m256i wq = weight_block_avx2(type, w, b, &dw);
    __m256i aw = _mm256_sign_epi8(wq, wq);  // |w| as unsigned bytes
    for (int r = 0; r < x.count; ++r) {
      __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[r] + b * QK));
      __m256i sx = _mm256_sign_epi8(xq, wq);  // x carrying w's sign
      __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[r][b]), _mm256_cvtepi32_ps(s32), acc[r]);
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = hsum256(acc[r]);
}
#pragma GCC pop_options


#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
/** One weight row against up to 4 activation rows (decode and small batches). */
void dot_vnni(int32_t type, const void* w, int64_t blocks, const ActivationRows& x, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t b = 0; b < blocks; ++b) {
    float dw;
    __m256i wq = weight_block_avx2(type, w, b, &dw);
    __m256i aw = _mm256_abs_epi8(wq);
    for (int r = 0; r < x.count; ++r) {
      __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[r] + b * QK));
      __m256i sx = _mm256_sign_epi8(xq, wq);
      __m256i s32 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x.d[r][b]), _mm256_cvtepi32_ps(s32), acc[r]);
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = hsum256(acc[r]);
}

#pragma GCC pop_options

using DotFn = void (*)(int32_t, const void*, int64_t, const ActivationRows&, float*);

DotFn select_dot() {
  uint32_t f = cpu_features();
  if (has_avx512_vnni()) return dot_vnni;
  if (has_avx2_fma() && (f & SR_CPU_F16C)) return dot_avx2;
  return dot_scalar;
}

/** y = x·wᵀ one weight row at a time against up to 4 activation rows (decode, or no VNNI). */
void quantized_matmul_rows(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k,
                           int64_t blocks, int64_t row_bytes) {
  const DotFn dot = select_dot();
  const QuantizedActivations xq(x, n, k);
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int count, float* out) {
    dot(type, static_cast<const char*>(w) + j * row_bytes, blocks, xq.rows(i0, count), out);
  });
}

bool is_bf16(int32_t type) { return type == SR_BF16 || type == SR_BF16_DOT; }

/** The storage type (a block type or BF16) and the sizes of the two entry points: k a multiple of the type's block. */
sr_status check_matmul(const char* name, int32_t type, int64_t n, int64_t m, int64_t k) {
  if (is_interleaved(type) || is_kquant_x16(type)) {
    if (m % kGroupRows != 0 || m < 0)
      return fail(SR_INVALID_ARGUMENT, std::string(name) + ": interleaved weights need m a multiple of 16, got m " + std::to_string(m));
  } else if (!is_bf16(type)) {
    sr_status st = check_block_type(name, type);
    if (st != SR_OK) return st;
  }
  const int64_t per = is_bf16(type) ? 1 : block_elements(type);
  if (n < 0 || m < 0 || k < 0 || k % per != 0)
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": bad sizes n " + std::to_string(n) + ", m " + std::to_string(m) +
                                         ", k " + std::to_string(k) + " (k must be a multiple of " + std::to_string(per) + ")");
  if (type == SR_BF16_DOT && !has_avx512_bf16())
    return fail(SR_UNSUPPORTED, std::string(name) + ": SR_BF16_DOT needs AVX-512 BF16 (vdpbf16ps), which this CPU lacks");
  return SR_OK;
}

/** y = x·wᵀ for every storage type; k > 0, n > 0, m > 0. Throws std::bad_alloc. */
void quantized_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  if (is_bf16(type)) return bf16_matmul(type == SR_BF16_DOT, x, static_cast<const uint16_t*>(w), y, n, m, k);
  if (is_kquant(type)) return kquant_matmul(type, x, w, y, n, m, k);
  if (is_kquant_x16(type)) return kquant_x16_matmul(type, x, w, y, n, m, k);
  if (is_interleaved(type)) {  // every row count reads the interleaved groups in place
    if (has_avx512_vnni()) return quant_gemm(type, x, w, y, n, m, k);
    return quant_gemm_interleaved_scalar(type, x, w, y, n, m, k);
  }
  const int64_t blocks = k / QK, row_bytes = blocks * block_bytes(type);
  // Many rows: the column-lane GEMM (quant_gemm.cpp); fewer: the VNNI tile where the CPU has it; otherwise one
  // weight row at a time (AVX-512 VNNI, AVX2 or scalar).
  // Measured crossover: 32 rows (at 16 the panel repacking costs more than the lanes save).
  constexpr int64_t kGemmRows = 32;
  if (n >= kGemmRows && has_avx512_vnni()) return quant_gemm(type, x, w, y, n, m, k);
  if (has_quant_tile()) return quant_tile_matmul(type, x, w, y, n, m, k);
  quantized_matmul_rows(type, x, w, y, n, m, k, blocks, row_bytes);
}

/** dx = dy·w for every storage type; n > 0, m > 0, k > 0. Throws std::bad_alloc. */
void quantized_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k) {
  if (is_bf16(type)) return bf16_matmul_backward(dy, static_cast<const uint16_t*>(w), dx, n, m, k);
  if (is_kquant(type)) return kquant_matmul_backward(type, dy, w, dx, n, m, k);
  if (is_kquant_x16(type)) return kquant_x16_matmul_backward(type, dy, w, dx, n, m, k);
  if (is_interleaved(type)) {
    return backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
      dequantize_interleaved(type, w, k / QK, j, c0 / QK, cols / QK, out);
    });
  }
  const int64_t row_bytes = k / QK * block_bytes(type);
  backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
    dequantize_row(type, static_cast<const char*>(w) + j * row_bytes + c0 / QK * block_bytes(type), cols / QK, out);
  });
}

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_quantized_matmul_f32(int32_t type, const float* x, const void* w, float* y, int64_t n,
                                                    int64_t m, int64_t k) {
  sr_status st = sr::check_matmul("sr_quantized_matmul_f32", type, n, m, k);
  if (st != SR_OK) return st;
  if (n == 0 || m == 0) return SR_OK;
  if (y == nullptr || (k > 0 && (x == nullptr || w == nullptr))) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_f32: null pointer");
  if (k == 0) {
    std::fill(y, y + n * m, 0.0f);
    return SR_OK;
  }
  try {
    sr::quantized_matmul(type, x, w, y, n, m, k);
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_quantized_matmul_f32: out of memory");
  }
  return SR_OK;
}

extern "C" SR_API sr_status sr_quantized_matmul_backward_f32(int32_t type, const float* dy, const void* w, float* dx,
                                                             int64_t n, int64_t m, int64_t k) {
  sr_status st = sr::check_matmul("sr_quantized_matmul_backward_f32", type, n, m, k);
  if (st != SR_OK) return st;
  if (n == 0 || k == 0) return SR_OK;
  if (dx == nullptr || (m > 0 && (dy == nullptr || w == nullptr)))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_backward_f32: null pointer");
  if (m == 0) {
    std::fill(dx, dx + n * k, 0.0f);
    return SR_OK;
  }
  try {
    sr::quantized_matmul_backward(type, dy, w, dx, n, m, k);
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_quantized_matmul_backward_f32: out of memory");
  }
  return SR_OK;
}
