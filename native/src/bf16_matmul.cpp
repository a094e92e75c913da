// QuantizedMatMul with BF16-stored weights and fp32 activations: y = x · wᵀ and dx = dy · w (quantized_matmul.cpp
// hands the SR_BF16 and SR_BF16_DOT types here).
//
// Two forward modes:
//   SR_BF16       — each weight is widened to fp32 (exact: bf16 is the top half of an fp32) and multiplied with
//                   the fp32 activation; the result equals an fp32 matmul with the widened weight up to the
//                   order of the fp32 sums. GEMV shapes stream the bf16 rows directly; GEMM shapes widen panels
//                   of weight rows and use the fp32 GEMM.
//   SR_BF16_DOT   — AVX-512 BF16 `vdpbf16ps`: the activations are rounded to bf16 (nearest-even) once, then
//                   pairs of bf16 products are accumulated in fp32. Faster, but x loses its low 16 bits.
// The backward is always exact (widened weight panels and the fp32 GEMM).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "bf16_matmul.h"
#include "matmul.h"
#include "panel_backward.h"
#include "parallel.h"
#include "saferlhf.h"
#include "stream_rows.h"

namespace sr {
namespace {

inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/** out[r] = Σ_c x[r][c] · w[c] for the `rows` activation rows (naive reference path). */
void dot_rows_scalar(const uint16_t* w, const float* const* x, int rows, int64_t k, float* out) {
  for (int r = 0; r < rows; ++r) {
    float acc = 0.0f;
    for (int64_t c = 0; c < k; ++c) acc += x[r][c] * bf16_to_f32(w[c]);
    out[r] = acc;
  }
}

#pragma GCC push_options
#pragma GCC target("avx2,fma")
inline __m256 widen8(const uint16_t* w) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

void dot_rows_avx2(const uint16_t* w, const float* const* x, int rows, int64_t k, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t c = 0;
  for (; c + 8 <= k; c += 8) {
    __m256 wv = widen8(w + c);
    for (int r = 0; r < rows; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x[r] + c), wv, acc[r]);
  }
  for (int r = 0; r < rows; ++r) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float total = _mm_cvtss_f32(s);
    for (int64_t t = c; t < k; ++t) total += x[r][t] * bf16_to_f32(w[t]);
    out[r] = total;
  }
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl")
inline float hsum512(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float total = 0.0f;
  for (float lane : lanes) total += lane;
  return total;
}

/** 16 bf16 → 16 fp32 (exact): zero-extend to 32 bits and shift into the upper half. */
inline __m512 widen16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
}

void dot_rows_avx512(const uint16_t* w, const float* const* x, int rows, int64_t k, float* out) {
  // Four independent accumulators per activation row (64 weights a step) hide the FMA latency.
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= k; c += 64) {
    __m512 wv[4];
    for (int u = 0; u < 4; ++u) wv[u] = widen16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c + 16 * u)));
    for (int r = 0; r < rows; ++r)
      for (int u = 0; u < 4; ++u) acc[r][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x[r] + c + 16 * u), wv[u], acc[r][u]);
  }
  for (; c < k; c += 16) {
    int64_t left = k - c;
    __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 wv = widen16(_mm256_maskz_loadu_epi16(mask, w + c));
    for (int r = 0; r < rows; ++r) acc[r][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x[r] + c), wv, acc[r][0]);
  }
  for (int r = 0; r < rows; ++r)
    out[r] = hsum512(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), _mm512_add_ps(acc[r][2], acc[r][3])));
}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512bf16")
/** xb[c] = bf16(x[c]) with round-to-nearest-even (vcvtne2ps2bf16), k padded with zeros to a multiple of 32. */
void round_row_bf16(const float* x, int64_t k, uint16_t* xb) {
  for (int64_t c = 0; c < k; c += 32) {
    int64_t left = k - c;
    __mmask16 lo = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __mmask16 hi = left >= 32 ? static_cast<__mmask16>(0xFFFF) : left > 16 ? static_cast<__mmask16>((1u << (left - 16)) - 1) : 0;
    __m512 a = _mm512_maskz_loadu_ps(lo, x + c);
    __m512 b = _mm512_maskz_loadu_ps(hi, x + c + 16);
    __m512bh packed = _mm512_cvtne2ps_pbh(b, a);  // elements 0..15 from a, 16..31 from b
    _mm512_storeu_si512(xb + c, reinterpret_cast<__m512i&>(packed));
  }
}

/** out[r] = Σ_c xb[r][c] · w[c] with vdpbf16ps (xb already rounded and zero-padded to a multiple of 32). */
void dot_rows_dpbf16(const uint16_t* w, const uint16_t* const* xb, int rows, int64_t k, float* out) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t c = 0; c < k; c += 32) {
    int64_t left = k - c;
    __mmask32 mask = left >= 32 ? ~static_cast<__mmask32>(0) : static_cast<__mmask32>((1ull << left) - 1);
    __m512i wv = _mm512_maskz_loadu_epi16(mask, w + c);
    for (int r = 0; r < rows; ++r) {
      __m512i xv = _mm512_loadu_si512(xb[r] + c);
      acc[r] = _mm512_dpbf16_ps(acc[r], reinterpret_cast<__m512bh&>(xv), reinterpret_cast<__m512bh&>(wv));
    }
  }
  for (int r = 0; r < rows; ++r) out[r] = hsum512(acc[r]);
}
#pragma GCC pop_options

using DotFn = void (*)(const uint16_t*, const float* const*, int, int64_t, float*);

DotFn select_dot() {
  if (has_avx512()) return dot_rows_avx512;
  if (has_avx2_fma()) return dot_rows_avx2;
  return dot_rows_scalar;
}

/** Rows of x at or below which the exact forward streams the weights (GEMV) instead of widening panels. */
constexpr int64_t kGemvMaxRows = 4;

/** panel[r][c] = fp32(w[(j0 + r) · k + c]) for r < rows, c < k. */
void widen_panel(const uint16_t* w, int64_t k, int64_t j0, int64_t rows, float* panel) {
  parallel_for(rows, static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const uint16_t* src = w + (j0 + r) * k;
      float* dst = panel + r * k;
      for (int64_t c = 0; c < k; ++c) dst[c] = bf16_to_f32(src[c]);
    }
  });
}

/** SR_BF16_DOT: x rounded to bf16 once, then vdpbf16ps against each streamed weight row. */
void matmul_dpbf16(const float* x, const uint16_t* w, float* y, int64_t n, int64_t m, int64_t k) {
  int64_t padded = (k + 31) / 32 * 32;
  Buffer<uint16_t> xb(static_cast<size_t>(n * padded));
  parallel_for(n, 2.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) round_row_bf16(x + i * k, k, xb.data() + i * padded);
  });
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int rows, float* out) {
    const uint16_t* xr[4];
    for (int r = 0; r < rows; ++r) xr[r] = xb.data() + (i0 + r) * padded;
    dot_rows_dpbf16(w + j * k, xr, rows, k, out);
  });
}

/** Exact, few rows: each bf16 weight row streamed against the fp32 activation rows. */
void matmul_stream(const float* x, const uint16_t* w, float* y, int64_t n, int64_t m, int64_t k) {
  const DotFn dot = select_dot();
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int rows, float* out) {
    const float* xr[4];
    for (int r = 0; r < rows; ++r) xr[r] = x + (i0 + r) * k;
    dot(w + j * k, xr, rows, k, out);
  });
}

/** Exact, many rows: y[:, j0:j0+rows] = x · panelᵀ with panels of weight rows widened to fp32. */
void matmul_panels(const float* x, const uint16_t* w, float* y, int64_t n, int64_t m, int64_t k) {
  constexpr int64_t kPanelRows = 256;
  Buffer<float> panel(static_cast<size_t>(std::min(m, kPanelRows) * k));
  for (int64_t j0 = 0; j0 < m; j0 += kPanelRows) {
    int64_t rows = std::min(kPanelRows, m - j0);
    widen_panel(w, k, j0, rows, panel.data());
    matmul_f32(n, rows, k, 1.0f, x, k, false, panel.data(), k, true, 0.0f, y + j0, m);
  }
}

}  // namespace

bool has_avx512_bf16() { return has_avx512() && (cpu_features() & SR_CPU_AVX512BF16); }

void bf16_matmul(bool dot, const float* x, const uint16_t* w, float* y, int64_t n, int64_t m, int64_t k) {
  if (dot) matmul_dpbf16(x, w, y, n, m, k);
  else if (n <= kGemvMaxRows) matmul_stream(x, w, y, n, m, k);
  else matmul_panels(x, w, y, n, m, k);
}

void bf16_matmul_backward(const float* dy, const uint16_t* w, float* dx, int64_t n, int64_t m, int64_t k) {
  backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
    const uint16_t* src = w + j * k + c0;
    for (int64_t c = 0; c < cols; ++c) out[c] = bf16_to_f32(src[c]);
  });
}

}  // namespace sr
