// ggml-compatible Q8_0 / Q4_0 blocks: quantize, dequantize, the weight-quantized matmul y = x·wᵀ
// (activations quantized to int8 per 32-block on the fly, int8 dot products with AVX-512 VNNI, AVX2 or
// scalar code) and its backward dx = dy·w (w dequantized panel by panel into the fp32 GEMM).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "gemm.h"
#include "panel_backward.h"
#include "parallel.h"
#include "status.h"

namespace sr {
namespace {

constexpr int QK = 32;

struct BlockQ8 {
  uint16_t d;
  int8_t qs[QK];
};
struct BlockQ4 {
  uint16_t d;
  uint8_t qs[QK / 2];
};
static_assert(sizeof(BlockQ8) == 34, "Q8_0 block is 34 bytes");
static_assert(sizeof(BlockQ4) == 18, "Q4_0 block is 18 bytes");

// ---------------- scalar quantize / dequantize (the layouts' definition) ----------------

void quantize_q8(const float* x, BlockQ8* blk) {
  float amax = 0.0f;
  for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
  float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  blk->d = float_to_half(d);
  for (int j = 0; j < QK; ++j) blk->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

void quantize_q4(const float* x, BlockQ4* blk) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  blk->d = float_to_half(d);
  for (int j = 0; j < QK / 2; ++j) {
    int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + QK / 2] * id + 8.5f)));
    blk->qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void dequantize_q8(const BlockQ8* blk, float* x) {
  float d = half_to_float(blk->d);
  for (int j = 0; j < QK; ++j) x[j] = blk->qs[j] * d;
}

void dequantize_q4(const BlockQ4* blk, float* x) {
  float d = half_to_float(blk->d);
  for (int j = 0; j < QK / 2; ++j) {
    x[j] = ((blk->qs[j] & 0x0F) - 8) * d;
    x[j + QK / 2] = ((blk->qs[j] >> 4) - 8) * d;
  }
}

void dequantize_row(int32_t type, const void* w, int64_t blocks, float* x) {
  if (type == SR_Q8_0) {
    const BlockQ8* b = static_cast<const BlockQ8*>(w);
    for (int64_t i = 0; i < blocks; ++i) dequantize_q8(b + i, x + i * QK);
  } else {
    const BlockQ4* b = static_cast<const BlockQ4*>(w);
    for (int64_t i = 0; i < blocks; ++i) dequantize_q4(b + i, x + i * QK);
  }
}

// ---------------- activations: int8 per 32-block with an fp32 scale ----------------

/** x [k] → q [k] int8 and d [k/32] (ggml Q8_0 rounding, scale kept in fp32). */
void quantize_activations(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* xb = x + b * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(xb[j]));
    float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    for (int j = 0; j < QK; ++j) q[b * QK + j] = static_cast<int8_t>(std::round(xb[j] * id));
  }
}

// ---------------- int8 block dot products: up to 4 activation rows against one weight row ----------------

struct XRows {
  const int8_t* q[4];
  const float* d[4];
  int count;
};

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

void dot_scalar(int32_t type, const void* w, int64_t blocks, const XRows& x, float* out) {
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

void dot_avx2(int32_t type, const void* w, int64_t blocks, const XRows& x, float* out) {
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
void dot_vnni(int32_t type, const void* w, int64_t blocks, const XRows& x, float* out) {
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

using DotFn = void (*)(int32_t, const void*, int64_t, const XRows&, float*);

DotFn select_dot() {
  uint32_t f = cpu_features();
  if (has_avx512() && (f & SR_CPU_AVX512VNNI) && (f & SR_CPU_F16C) && has_avx2_fma()) return dot_vnni;
  if (has_avx2_fma() && (f & SR_CPU_F16C)) return dot_avx2;
  return dot_scalar;
}

int64_t block_bytes(int32_t type) { return type == SR_Q8_0 ? 34 : 18; }

sr_status check_type(const char* name, int32_t type) {
  if (type != SR_Q8_0 && type != SR_Q4_0) return fail(SR_INVALID_ARGUMENT, std::string(name) + ": unknown block type " + std::to_string(type));
  return SR_OK;
}

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_quant_block_bytes(int32_t type, int32_t* bytes) {
  sr_status st = sr::check_type("sr_quant_block_bytes", type);
  if (st != SR_OK) return st;
  if (bytes == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_quant_block_bytes: bytes is null");
  *bytes = static_cast<int32_t>(sr::block_bytes(type));
  return SR_OK;
}

extern "C" SR_API sr_status sr_quantize_f32(int32_t type, const float* x, void* blocks, int64_t n) {
  sr_status st = sr::check_type("sr_quantize_f32", type);
  if (st != SR_OK) return st;
  if (n < 0 || n % sr::QK != 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantize_f32: element count " + std::to_string(n) + " is not a multiple of 32");
  if (n == 0) return SR_OK;
  if (x == nullptr || blocks == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantize_f32: null pointer");
  sr::parallel_for(n / sr::QK, 200.0, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (type == SR_Q8_0) sr::quantize_q8(x + i * sr::QK, static_cast<sr::BlockQ8*>(blocks) + i);
      else sr::quantize_q4(x + i * sr::QK, static_cast<sr::BlockQ4*>(blocks) + i);
    }
  });
  return SR_OK;
}

extern "C" SR_API sr_status sr_dequantize_f32(int32_t type, const void* blocks, float* x, int64_t n) {
  sr_status st = sr::check_type("sr_dequantize_f32", type);
  if (st != SR_OK) return st;
  if (n < 0 || n % sr::QK != 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32: element count " + std::to_string(n) + " is not a multiple of 32");
  if (n == 0) return SR_OK;
  if (x == nullptr || blocks == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32: null pointer");
  sr::parallel_for(n / sr::QK, 64.0, [&](int64_t b, int64_t e) {
    sr::dequantize_row(type, static_cast<const char*>(blocks) + b * sr::block_bytes(type), e - b, x + b * sr::QK);
  });
  return SR_OK;
}

extern "C" SR_API sr_status sr_quantized_matmul_f32(int32_t type, const float* x, const void* w, float* y, int64_t n,
                                                    int64_t m, int64_t k) {
  sr_status st = sr::check_type("sr_quantized_matmul_f32", type);
  if (st != SR_OK) return st;
  if (n < 0 || m < 0 || k < 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_f32: bad sizes n " + std::to_string(n) + ", m " + std::to_string(m) +
                                             ", k " + std::to_string(k) + " (k must be a multiple of 32)");
  if (n == 0 || m == 0) return SR_OK;
  if (y == nullptr || (k > 0 && (x == nullptr || w == nullptr))) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_f32: null pointer");
  const sr::DotFn dot = sr::select_dot();
  const int64_t blocks = k / sr::QK, row_bytes = blocks * sr::block_bytes(type);
  try {
    sr::Buffer<int8_t> xq(static_cast<size_t>(n * k));
    sr::Buffer<float> xd(static_cast<size_t>(n * blocks + 1));
    sr::parallel_for(n, 3.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) sr::quantize_activations(x + i * k, k, xq.data() + i * k, xd.data() + i * blocks);
    });
    // Tasks: 32 weight rows each (a panel that stays in L2) against every activation row, 4 at a time.
    constexpr int64_t kRowsPerTask = 32;
    int64_t tasks = (m + kRowsPerTask - 1) / kRowsPerTask;
    int threads = static_cast<double>(n) * m * k < 1e5 ? 1 : sr::num_threads();
    sr::parallel_tasks(tasks, threads, [&](int64_t task, int) {
      int64_t j0 = task * kRowsPerTask, j1 = std::min(m, j0 + kRowsPerTask);
      for (int64_t i0 = 0; i0 < n; i0 += 4) {
        sr::XRows rows{};
        rows.count = static_cast<int>(std::min<int64_t>(4, n - i0));
        for (int r = 0; r < rows.count; ++r) {
          rows.q[r] = xq.data() + (i0 + r) * k;
          rows.d[r] = xd.data() + (i0 + r) * blocks;
        }
        for (int64_t j = j0; j < j1; ++j) {
          float out[4];
          dot(type, static_cast<const char*>(w) + j * row_bytes, blocks, rows, out);
          for (int r = 0; r < rows.count; ++r) y[(i0 + r) * m + j] = out[r];
        }
      }
    });
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_quantized_matmul_f32: out of memory");
  }
  return SR_OK;
}

extern "C" SR_API sr_status sr_quantized_matmul_backward_f32(int32_t type, const float* dy, const void* w, float* dx,
                                                             int64_t n, int64_t m, int64_t k) {
  sr_status st = sr::check_type("sr_quantized_matmul_backward_f32", type);
  if (st != SR_OK) return st;
  if (n < 0 || m < 0 || k < 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_backward_f32: bad sizes n " + std::to_string(n) + ", m " +
                                             std::to_string(m) + ", k " + std::to_string(k) + " (k must be a multiple of 32)");
  if (n == 0 || k == 0) return SR_OK;
  if (dx == nullptr || (m > 0 && (dy == nullptr || w == nullptr)))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_quantized_matmul_backward_f32: null pointer");
  if (m == 0) {
    std::fill(dx, dx + n * k, 0.0f);
    return SR_OK;
  }
  const int64_t row_bytes = k / sr::QK * sr::block_bytes(type);
  try {
    sr::backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
      sr::dequantize_row(type, static_cast<const char*>(w) + j * row_bytes + c0 / sr::QK * sr::block_bytes(type), cols / sr::QK, out);
    });
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_quantized_matmul_backward_f32: out of memory");
  }
  return SR_OK;
}
