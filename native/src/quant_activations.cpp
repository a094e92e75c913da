// Activation quantization for the Q8_0 / Q4_0 matmuls: the scalar reference and its AVX-512 version (same bits).
#include "quant_activations.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "parallel.h"
#include "quant_blocks.h"

namespace sr {

void quantize_activations_scalar(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / QK; ++b) {
    const float* xb = x + b * QK;
    float amax = 0.0f;
    for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(xb[j]));
    float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    for (int j = 0; j < QK; ++j) q[b * QK + j] = static_cast<int8_t>(std::round(xb[j] * id));
  }
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** round(v) half away from zero, exactly: trunc(v), plus sign(v) where |v − trunc(v)| ≥ 0.5 (the difference is
 *  exact for |v| < 2^23; here |v| ≤ 127). */
inline __m512i round_away(__m512 v) {
  __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
  __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN));
  __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)), sign));  // ±1 with v's sign
  return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
}

void quantize_activations_avx512(const float* x, int64_t k, int8_t* q, float* d) {
  for (int64_t b = 0; b < k / QK; ++b) {
    __m512 lo = _mm512_loadu_ps(x + b * QK), hi = _mm512_loadu_ps(x + b * QK + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    d[b] = db;
    __m512 s = _mm512_set1_ps(id);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * QK), _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(lo, s))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + b * QK + 16), _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(hi, s))));
  }
}

/** 16 lanes at a time: the 4-byte sums by widening multiply-adds (no VNNI needed), times −shift. */
void lane_bias_avx512(const int8_t* q, int64_t lanes, int32_t shift, int32_t* bias) {
  int64_t l = 0;
  const __m512i ones = _mm512_set1_epi16(1), minus = _mm512_set1_epi32(-shift);
  for (; l + 16 <= lanes; l += 16) {
    __m512i bytes = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 4 * l)));
    __m512i pairs = _mm512_madd_epi16(bytes, ones);  // 16 sums of 2: lanes 0–15 of the first 32 bytes
    __m512i bytes2 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 4 * l + 32)));
    __m512i pairs2 = _mm512_madd_epi16(bytes2, ones);
    // Adjacent pair sums → the 4-byte sums, in order: even and odd pair indices across both halves.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512i sums = _mm512_add_epi32(_mm512_permutex2var_epi32(pairs, even, pairs2), _mm512_permutex2var_epi32(pairs, odd, pairs2));
    _mm512_storeu_si512(bias + l, _mm512_mullo_epi32(sums, minus));
  }
  for (; l < lanes; ++l) bias[l] = -shift * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

void quantize_activations(const float* x, int64_t k, int8_t* q, float* d) {
  if (has_avx512()) return quantize_activations_avx512(x, k, q, d);
  quantize_activations_scalar(x, k, q, d);
}

void lane_bias(const int8_t* q, int64_t lanes, int32_t shift, int32_t* bias) {
  if (has_avx512()) return lane_bias_avx512(q, lanes, shift, bias);
  for (int64_t l = 0; l < lanes; ++l) bias[l] = -shift * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
}

QuantizedActivations::QuantizedActivations(const float* x, int64_t n, int64_t k)
    : k_(k), q_(static_cast<size_t>(n * k)), d_(static_cast<size_t>(n * (k / 32))), sum16_(static_cast<size_t>(n * (k / 16))) {
  parallel_for(n, 4.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int8_t* qi = q_.data() + i * k;
      quantize_activations(x + i * k, k, qi, d_.data() + i * (k / 32));
      int32_t* s = sum16_.data() + i * (k / 16);
      for (int64_t g = 0; g < k / 16; ++g) {
        int32_t sum = 0;
        for (int j = 0; j < 16; ++j) sum += qi[g * 16 + j];
        s[g] = sum;
      }
    }
  });
}

ActivationRows QuantizedActivations::rows(int64_t i0, int count) const {
  ActivationRows r{};
  r.count = count;
  for (int i = 0; i < count; ++i) {
    r.q[i] = q(i0 + i);
    r.d[i] = d(i0 + i);
    r.sum16[i] = sum16(i0 + i);
  }
  return r;
}

}  // namespace sr
