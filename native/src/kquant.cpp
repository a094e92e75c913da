// ggml K-quant weights (Q4_K, Q5_K, Q6_K) under the quantized linear layer. Where the CPU has AVX-512 VNNI the forward
// rounds the activations to int8 per 32-block, as llama.cpp does, and multiplies with integer dot products: one weight
// row at a time below 32 activation rows (decode, kquant_int8.cpp), 16 weight rows unpacked into column lanes from 32
// (prefill, kquant_gemm.cpp). Otherwise, and for the backward dx = dy·w, each super-block is decoded to fp32 (a scalar
// decoder that follows the layout, compiled per ISA; Q4_K and Q6_K also AVX-512 ones with the same bits), then:
//   forward, few activation rows: tasks of 32 weight rows, every super-block decoded once into a 256-float buffer and
//            dotted with each activation row (AVX-512 / AVX2 FMA, or scalar) — the weight is read once;
//   forward, many rows, and the backward: panels of the weight decoded to fp32 and multiplied with the fp32 GEMM,
// which equals an fp32 matmul with the dequantized weight up to the order of the fp32 sums.
#include "kquant.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "matmul.h"
#include "panel_backward.h"
#include "parallel.h"
#include "status.h"
#include "vmath.h"

namespace sr {
namespace {

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

/** Q4_K (144 bytes: d, dmin, scales[12], qs[128]) and Q5_K (176 bytes: d, dmin, scales[12], qh[32], qs[128]).
 *  Compiled per ISA (SR_CLONES). Every product here is exact in fp32 (an fp16 scale times a 6-bit scale times a
 *  5-bit weight: at most 22 significant bits), so a clone that contracts d·q − m into an FMA gives the same bits. */
SR_CLONES void decode_affine(const uint8_t* __restrict b, bool five, float* __restrict x) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int c = 0; c < 4; ++c) {
    int s0, m0, s1, m1;
    kquant_scale_min(scales, 2 * c, &s0, &m0);
    kquant_scale_min(scales, 2 * c + 1, &s1, &m1);
    const float d0 = d * s0, o0 = dmin * m0, d1 = d * s1, o1 = dmin * m1;
    for (int l = 0; l < 32; ++l) {
      int q0 = qs[32 * c + l] & 0xF, q1 = qs[32 * c + l] >> 4;
      if (five) {
        q0 += ((qh[l] >> (2 * c)) & 1) << 4;
        q1 += ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      x[64 * c + l] = d0 * q0 - o0;
      x[64 * c + 32 + l] = d1 * q1 - o1;
    }
  }
}

/** Q6_K (210 bytes: ql[128], qh[64], int8 scales[16], d). The 16 group scales d·sc are formed first (the same fp32
 *  product ggml forms), then each weight is one product; restrict lets the stores not reload the block. */
SR_CLONES void decode_q6(const uint8_t* __restrict b, float* __restrict x) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16(b + 208);
  float ds[16];
  for (int g = 0; g < 16; ++g) ds[g] = d * sc[g];
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < 4; ++p)
      for (int half = 0; half < 2; ++half) {
        const float s = ds[8 * h + 2 * p + half];
        for (int i = 0; i < 16; ++i) {
          const int l = 16 * half + i;
          const int low = ql[64 * h + 32 * (p & 1) + l] >> (4 * (p >> 1)) & 0xF;
          const int top = (qh[32 * h + l] >> (2 * p)) & 3;
          x[128 * h + 32 * p + l] = s * ((low | (top << 4)) - 32);
        }
      }
}

#pragma GCC push_options
#pragma GCC target("avx2,avx512f,avx512bw,avx512vl")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
/** decode_affine for Q4_K with AVX-512: the same scalar scales, then 16 weights per step as (d·s)·q − dmin·m (exact
 *  products, one rounding of the difference: the same bits as decode_affine). */
void decode_q4k_avx512(const uint8_t* __restrict b, float* __restrict x) {
  const float d = f16(b), dmin = f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    int s0, m0, s1, m1;
    kquant_scale_min(scales, 2 * c, &s0, &m0);
    kquant_scale_min(scales, 2 * c + 1, &s1, &m1);
    const __m512 d0 = _mm512_set1_ps(d * s0), o0 = _mm512_set1_ps(dmin * m0);
    const __m512 d1 = _mm512_set1_ps(d * s1), o1 = _mm512_set1_ps(dmin * m1);
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
    const __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
    for (int half = 0; half < 2; ++half) {
      const __m128i l = half == 0 ? _mm256_castsi256_si128(lo) : _mm256_extracti128_si256(lo, 1);
      const __m128i h = half == 0 ? _mm256_castsi256_si128(hi) : _mm256_extracti128_si256(hi, 1);
      const __m512 ql = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(l)), qh = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(h));
      _mm512_storeu_ps(x + 64 * c + 16 * half, _mm512_sub_ps(_mm512_mul_ps(d0, ql), o0));
      _mm512_storeu_ps(x + 64 * c + 32 + 16 * half, _mm512_sub_ps(_mm512_mul_ps(d1, qh), o1));
    }
  }
}

/** decode_q6 with AVX-512: 32 weights per step from the low nibbles (ql) and 2-bit tops (qh), each s·(q − 32) with
 *  the same fp32 group scales s = d·sc (the same bits as decode_q6). */
void decode_q6_avx512(const uint8_t* __restrict b, float* __restrict x) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16(b + 208);
  const __m256i low4 = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(3), offset = _mm256_set1_epi8(32);
  for (int h = 0; h < 2; ++h) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
    const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
    const __m256i top = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
    const __m256i low[4] = {_mm256_and_si256(a, low4), _mm256_and_si256(c, low4),
                            _mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(_mm256_srli_epi16(c, 4), low4)};
    for (int p = 0; p < 4; ++p) {
      const __m256i t = _mm256_and_si256(_mm256_srli_epi16(top, 2 * p), two);
      const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low[p], _mm256_slli_epi16(t, 4)), offset);  // −32 … 31
      for (int half = 0; half < 2; ++half) {
        const __m128i part = half == 0 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
        const __m512 s = _mm512_set1_ps(d * sc[8 * h + 2 * p + half]);
        _mm512_storeu_ps(x + 128 * h + 32 * p + 16 * half, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(part))));
      }
    }
  }
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

void decode_block(int32_t type, const uint8_t* b, float* x) {
  if (type == SR_Q6_K) return has_avx512() ? decode_q6_avx512(b, x) : decode_q6(b, x);
  if (type == SR_Q4_K && has_avx512()) return decode_q4k_avx512(b, x);
  decode_affine(b, type == SR_Q5_K, x);
}

// ---------------- dot of one decoded super-block with up to 4 activation rows ----------------

using Dot256 = void (*)(const float*, const float* const*, int, float*);

void dot256_scalar(const float* w, const float* const* x, int rows, float* acc) {
  for (int r = 0; r < rows; ++r) {
    float s = 0.0f;
    for (int c = 0; c < QK_K; ++c) s += x[r][c] * w[c];
    acc[r] += s;
  }
}

#pragma GCC push_options
#pragma GCC target("avx2,fma")
void dot256_avx2(const float* w, const float* const* x, int rows, float* acc) {
  for (int r = 0; r < rows; ++r) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int c = 0; c < QK_K; c += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + c), _mm256_loadu_ps(w + c), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + c + 8), _mm256_loadu_ps(w + c + 8), a1);
    }
    __m256 s8 = _mm256_add_ps(a0, a1);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    acc[r] += _mm_cvtss_f32(s);
  }
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
void dot256_avx512(const float* w, const float* const* x, int rows, float* acc) {
  __m512 wv[16];
  for (int u = 0; u < 16; ++u) wv[u] = _mm512_loadu_ps(w + 16 * u);
  for (int r = 0; r < rows; ++r) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int u = 0; u < 16; u += 2) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + 16 * u), wv[u], a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + 16 * u + 16), wv[u + 1], a1);
    }
    acc[r] += _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));  // a tree: 16 sequential adds were the loop's latency
  }
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

Dot256 select_dot256() {
  if (has_avx512() && has_avx2_fma()) return dot256_avx512;
  if (has_avx2_fma()) return dot256_avx2;
  return dot256_scalar;
}

/** Few activation rows: each weight row's super-blocks decoded once and dotted with up to 4 rows at a time. */
void matmul_rows(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const Dot256 dot = select_dot256();
  const int64_t blocks = k / QK_K, row_bytes = blocks * kquant_block_bytes(type), bb = kquant_block_bytes(type);
  constexpr int64_t kRowsPerTask = 32;
  const int64_t tasks = (m + kRowsPerTask - 1) / kRowsPerTask;
  const int threads = static_cast<double>(n) * m * k < 1e5 ? 1 : num_threads();
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    alignas(64) float wf[QK_K];
    const int64_t j1 = std::min(m, (task + 1) * kRowsPerTask);
    for (int64_t j = task * kRowsPerTask; j < j1; ++j) {
      const uint8_t* row = static_cast<const uint8_t*>(w) + j * row_bytes;
      for (int64_t i0 = 0; i0 < n; i0 += 4) {
        const int rows = static_cast<int>(std::min<int64_t>(4, n - i0));
        float acc[4] = {};
        const float* xr[4];
        for (int64_t b = 0; b < blocks; ++b) {
          decode_block(type, row + b * bb, wf);
          for (int r = 0; r < rows; ++r) xr[r] = x + (i0 + r) * k + b * QK_K;
          dot(wf, xr, rows, acc);
        }
        for (int r = 0; r < rows; ++r) y[(i0 + r) * m + j] = acc[r];
      }
    }
  });
}

/** Many activation rows: y[:, j0:j0+rows] (+)= x[:, c0:c0+cols] · panelᵀ over decoded weight panels. */
void matmul_panels(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  constexpr int64_t kRows = 256, kCols = 1024;
  const int64_t bb = kquant_block_bytes(type), row_bytes = k / QK_K * bb;
  Buffer<float> panel(static_cast<size_t>(std::min(m, kRows) * std::min(k, kCols)));
  for (int64_t c0 = 0; c0 < k; c0 += kCols) {
    const int64_t cols = std::min(kCols, k - c0);
    for (int64_t j0 = 0; j0 < m; j0 += kRows) {
      const int64_t rows = std::min(kRows, m - j0);
      parallel_for(rows, static_cast<double>(cols), [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j)
          kquant_dequantize_row(type, static_cast<const uint8_t*>(w) + (j0 + j) * row_bytes + c0 / QK_K * bb, cols / QK_K,
                                panel.data() + j * cols);
      });
      matmul_f32(n, rows, cols, 1.0f, x + c0, k, false, panel.data(), cols, true, c0 == 0 ? 0.0f : 1.0f, y + j0, m);
    }
  }
}

}  // namespace

bool is_kquant(int32_t type) { return type == SR_Q4_K || type == SR_Q5_K || type == SR_Q6_K; }

int64_t kquant_block_bytes(int32_t type) { return type == SR_Q4_K ? 144 : type == SR_Q5_K ? 176 : 210; }

void kquant_dequantize_row(int32_t type, const void* w, int64_t blocks, float* x) {
  const uint8_t* b = static_cast<const uint8_t*>(w);
  const int64_t bb = kquant_block_bytes(type);
  for (int64_t i = 0; i < blocks; ++i) decode_block(type, b + i * bb, x + i * QK_K);
}

void kquant_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  if (has_avx512_vnni() && n < kKQuantGemmRows) kquant_matmul_int8(type, x, w, y, n, m, k);
  else if (has_avx512_vnni()) kquant_gemm(type, x, w, y, n, m, k);
  else if (n < 8) matmul_rows(type, x, w, y, n, m, k);
  else matmul_panels(type, x, w, y, n, m, k);
}

void kquant_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k) {
  const int64_t bb = kquant_block_bytes(type), row_bytes = k / QK_K * bb;
  backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
    kquant_dequantize_row(type, static_cast<const uint8_t*>(w) + j * row_bytes + c0 / QK_K * bb, cols / QK_K, out);
  });
}

}  // namespace sr
