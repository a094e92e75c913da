// Q4_K under the quantized linear layer with int8 activations, for few activation rows (decode): x is quantized per
// 32-block as the Q8_0 / Q4_0 product does (quant_activations.h), and each 32-weight sub-block of a super-block is one
// vpdpbusd of its nibbles (unsigned) against the activation block, scaled in fp32:
//   y = Σ_sub [ d·sc·d_x · Σ_j q_j·x_j  −  dmin·m·d_x · Σ_j x_j ]   (= Σ_sub d_x · Σ_j x_j · w_j, w = d·sc·q − dmin·m)
// so the result is the exact product of the dequantized weights with the int8-rounded activations, up to fp32 order.
// Needs AVX-512 VNNI (256-bit form); kquant.cpp keeps the fp32 path elsewhere.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kquant.h"
#include "parallel.h"
#include "quant_activations.h"
#include "stream_rows.h"

namespace sr {
namespace {

constexpr int QK = 32;

/** Up to 4 activation rows: int8 values, per-32-block scales and per-32-block sums. */
struct XRows {
  const int8_t* q[4];
  const float* d[4];
  const int32_t* sum[4];
  int count;
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/** One Q4_K weight row (`supers` super-blocks of 144 bytes) against up to 4 activation rows. */
void q4k_row_vnni(const uint8_t* row, int64_t supers, const XRows& x, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  float mins[4] = {};
  const __m256i low = _mm256_set1_epi8(0x0F);
  for (int64_t sb = 0; sb < supers; ++sb) {
    const uint8_t* b = row + sb * 144;
    uint16_t h[2];
    std::memcpy(h, b, 4);
    const float d = _cvtsh_ss(h[0]), dmin = _cvtsh_ss(h[1]);
    int sc[8], mn[8];
    for (int s = 0; s < 8; ++s) kquant_scale_min(b + 4, s, &sc[s], &mn[s]);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + 32 * c));
      const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      const int64_t b0 = sb * 8 + 2 * c;  // the activation blocks of sub-blocks 2c (low nibbles) and 2c+1 (high)
      for (int r = 0; r < x.count; ++r) {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[r] + b0 * QK));
        const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[r] + (b0 + 1) * QK));
        const __m256i s0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, x0);
        const __m256i s1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, x1);
        const float d0 = x.d[r][b0], d1 = x.d[r][b0 + 1];
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * c] * d0), _mm256_cvtepi32_ps(s0), acc[r]);
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * c + 1] * d1), _mm256_cvtepi32_ps(s1), acc[r]);
        mins[r] += dmin * mn[2 * c] * d0 * static_cast<float>(x.sum[r][b0]) +
                   dmin * mn[2 * c + 1] * d1 * static_cast<float>(x.sum[r][b0 + 1]);
      }
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = hsum256(acc[r]) - mins[r];
}
#pragma GCC pop_options

}  // namespace

bool has_q4k_int8() {
  uint32_t f = cpu_features();
  return has_avx512() && (f & SR_CPU_AVX512VNNI) && (f & SR_CPU_F16C) && has_avx2_fma();
}

void q4k_matmul_int8(const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t blocks = k / QK, supers = k / QK_K, row_bytes = supers * 144;
  Buffer<int8_t> xq(static_cast<size_t>(n * k));
  Buffer<float> xd(static_cast<size_t>(n * blocks));
  Buffer<int32_t> xs(static_cast<size_t>(n * blocks));
  for (int64_t i = 0; i < n; ++i) {
    int8_t* q = xq.data() + i * k;
    quantize_activations(x + i * k, k, q, xd.data() + i * blocks);
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t s = 0;
      for (int j = 0; j < QK; ++j) s += q[b * QK + j];
      xs[static_cast<size_t>(i * blocks + b)] = s;
    }
  }
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int count, float* out) {
    XRows rows{};
    rows.count = count;
    for (int r = 0; r < count; ++r) {
      rows.q[r] = xq.data() + (i0 + r) * k;
      rows.d[r] = xd.data() + (i0 + r) * blocks;
      rows.sum[r] = xs.data() + (i0 + r) * blocks;
    }
    q4k_row_vnni(static_cast<const uint8_t*>(w) + j * row_bytes, supers, rows, out);
  });
}

}  // namespace sr
