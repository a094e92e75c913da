// Q4_K and Q6_K under the quantized linear layer with int8 activations, for few activation rows (decode): x is
// quantized per 32-block as the Q8_0 / Q4_0 product does (quant_activations.h), and each 32 weights are one vpdpbusd of
// their unsigned codes against the activation block, scaled in fp32:
//   Q4_K: y = Σ_sub [ d·sc·d_x · Σ_j q_j·x_j  −  dmin·m·d_x · Σ_j x_j ]       (w = d·sc·q − dmin·m, 32-weight subs)
//   Q6_K: y = Σ_16 [ d·sc·d_x · (Σ_j u_j·x_j  −  32 · Σ_j x_j) ]              (w = d·sc·(u − 32), 16-weight subs)
// so the result is the exact product of the dequantized weights with the int8-rounded activations, up to fp32 order.
// Needs has_avx512_vnni() (256-bit form); kquant.cpp keeps the fp32 path elsewhere.
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

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/** One Q4_K weight row (`supers` super-blocks of 144 bytes) against up to 4 activation rows. */
void q4k_row_vnni(const uint8_t* row, int64_t supers, const ActivationRows& x, float* out) {
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
        const int32_t* s16 = x.sum16[r] + 2 * b0;
        mins[r] += dmin * mn[2 * c] * d0 * static_cast<float>(s16[0] + s16[1]) +
                   dmin * mn[2 * c + 1] * d1 * static_cast<float>(s16[2] + s16[3]);
      }
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = hsum256(acc[r]) - mins[r];
}

/** One Q6_K weight row (`supers` super-blocks of 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d) against up to 4
 *  activation rows. Weights 128h + 32p + l (l < 32): low 4 bits from ql[64h + 32(p & 1) + l] (high nibble for p ≥ 2),
 *  top 2 bits from qh[32h + l] >> 2p, scale sc[8h + 2p + l/16]; w = d·sc·(u − 32). */
void q6k_row_vnni(const uint8_t* row, int64_t supers, const ActivationRows& x, float* out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  float offsets[4] = {};
  const __m256i low = _mm256_set1_epi8(0x0F), two = _mm256_set1_epi8(0x03);
  for (int64_t sb = 0; sb < supers; ++sb) {
    const uint8_t* b = row + sb * 210;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    uint16_t dh;
    std::memcpy(&dh, b + 208, 2);
    const float d = _cvtsh_ss(dh);
    for (int h = 0; h < 2; ++h) {
      const __m256i top = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
      for (int p = 0; p < 4; ++p) {
        const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32 * (p & 1)));
        const __m256i nib = _mm256_and_si256(p >= 2 ? _mm256_srli_epi16(bytes, 4) : bytes, low);
        const __m256i hi2 = _mm256_and_si256(_mm256_srli_epi16(top, 2 * p), two);
        const __m256i u = _mm256_or_si256(nib, _mm256_slli_epi16(hi2, 4));  // 0 .. 63
        const int g = 8 * h + 2 * p;  // the scales of values 0–15 and 16–31 of this 32-block
        const int64_t blk = sb * 8 + 4 * h + p;
        for (int r = 0; r < x.count; ++r) {
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q[r] + blk * QK));
          const __m256i dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, xv);  // lanes 0–3: values 0–15
          const float dd = d * x.d[r][blk];
          const __m256 scale = _mm256_setr_m128(_mm_set1_ps(dd * sc[g]), _mm_set1_ps(dd * sc[g + 1]));
          acc[r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[r]);
          const int32_t* s16 = x.sum16[r] + 2 * blk;
          offsets[r] += 32.0f * dd * (sc[g] * static_cast<float>(s16[0]) + sc[g + 1] * static_cast<float>(s16[1]));
        }
      }
    }
  }
  for (int r = 0; r < x.count; ++r) out[r] = hsum256(acc[r]) - offsets[r];
}
#pragma GCC pop_options

}  // namespace

void kquant_matmul_int8(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t supers = k / QK_K, row_bytes = supers * kquant_block_bytes(type);
  const QuantizedActivations xq(x, n, k);
  const auto row_kernel = type == SR_Q6_K ? q6k_row_vnni : q4k_row_vnni;
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int count, float* out) {
    row_kernel(static_cast<const uint8_t*>(w) + j * row_bytes, supers, xq.rows(i0, count), out);
  });
}

}  // namespace sr
