// Q4_K, Q5_K and Q6_K under the quantized linear layer with int8 activations: x is quantized per 32-block as the
// Q8_0 / Q4_0 product does (quant_activations.h), and every 64 weights of a row are one 512-bit vpdpbusd of their
// unsigned codes against two activation blocks, each 16 lanes then scaled in fp32:
//   Q4_K / Q5_K: y = Σ_sub [ d·sc·d_x · Σ_j q_j·x_j  −  dmin·m·d_x · Σ_j x_j ]     (w = d·sc·q − dmin·m, 32-weight subs)
//   Q6_K:        y = Σ_16  [ d·sc·d_x · (Σ_j u_j·x_j  −  32 · Σ_j x_j) ]            (w = d·sc·(u − 32), 16-weight subs)
// so the result is the exact product of the dequantized weights with the int8-rounded activations, up to fp32 order.
// A super-block's 8 (or 16) scales are unpacked once into a vector and multiplied with the 8 activation scales at once;
// a permute puts each scale on the lanes of its sub-block. Needs has_avx512_vnni(); kquant.cpp keeps the fp32 path
// elsewhere.
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

/** The 8 six-bit scales and 8 mins of a Q4_K / Q5_K super-block (12 packed bytes at q) as bytes, in sub-block order:
 *  the bytewise form of kquant_scale_min (sub-blocks 0–3 from the low 6 bits of bytes 0–3 and 4–7; 4–7 from the
 *  nibbles of bytes 8–11 with the top 2 bits of bytes 0–3 and 4–7). */
inline void unpack_scales_mins(const uint8_t* q, uint64_t* sc, uint64_t* mn) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, q, 4);
  std::memcpy(&u1, q + 4, 4);
  std::memcpy(&u2, q + 8, 4);
  const uint32_t six = 0x3F3F3F3Fu, four = 0x0F0F0F0Fu, two = 0x03030303u;
  const uint32_t sc_hi = (u2 & four) | (((u0 >> 6) & two) << 4);
  const uint32_t mn_hi = ((u2 >> 4) & four) | (((u1 >> 6) & two) << 4);
  *sc = (u0 & six) | static_cast<uint64_t>(sc_hi) << 32;
  *mn = (u1 & six) | static_cast<uint64_t>(mn_hi) << 32;
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

/** 8 bytes → 8 floats. */
inline __m256 bytes_to_ps(uint64_t v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>(v)))); }

/** Independent accumulators per activation row: one row alone would otherwise wait on one FMA chain per
 *  super-block (4 FMAs), which at short rows (k = 768: 3 super-blocks) bounds the loop rather than the loads. */
constexpr int chains(int rows) { return rows == 1 ? 4 : rows == 2 ? 2 : 1; }

template <int C>
inline __m512 sum(const __m512 (&v)[C]) {
  __m512 s = v[0];
  for (int c = 1; c < C; ++c) s = _mm512_add_ps(s, v[c]);
  return s;
}

/** Lane i of a 16-lane vector takes element pattern[i] of an 8- or 16-element scale vector. */
inline __m512i lanes(int a, int b) {  // lanes 0–7 ← a, 8–15 ← b
  return _mm512_setr_epi32(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
}

/** One Q4_K (144-byte) or Q5_K (176-byte) weight row of `supers` super-blocks against R ≤ 4 activation rows. Codes of
 *  sub-blocks 2c (low nibbles of qs[32c..32c+31], plus bit 2c of qh for Q5_K) and 2c+1 (high nibbles, bit 2c+1) share
 *  one register, against the two adjacent activation blocks. */
template <bool kFive, int R>
void affine_rows_vnni(const uint8_t* row, int64_t supers, const ActivationRows& x, float* out) {
  constexpr int64_t kBytes = kFive ? 176 : 144;
  constexpr int C = chains(R);
  __m512 acc[R][C], mins[R];
  for (int r = 0; r < R; ++r) {
    mins[r] = _mm512_setzero_ps();
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const __m256i low = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  const __m512i pair = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);  // 16-value group → sub-block
  const __m512i sub[4] = {lanes(0, 1), lanes(2, 3), lanes(4, 5), lanes(6, 7)};
  for (int64_t sb = 0; sb < supers; ++sb) {
    const uint8_t* b = row + sb * kBytes;
    const uint8_t* qs = b + (kFive ? 48 : 16);
    uint64_t sc8, mn8;
    unpack_scales_mins(b + 4, &sc8, &mn8);
    const __m256 dsc = _mm256_mul_ps(_mm256_set1_ps(f16(b)), bytes_to_ps(sc8));     // d·sc per sub-block
    const __m256 dmn = _mm256_mul_ps(_mm256_set1_ps(f16(b + 2)), bytes_to_ps(mn8));  // dmin·m per sub-block
    __m512i w[4];
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
      __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      if (kFive) {
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
      w[c] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    for (int r = 0; r < R; ++r) {
      const __m256 dx = _mm256_loadu_ps(x.d[r] + sb * 8);
      const __m512 scale = _mm512_castps256_ps512(_mm256_mul_ps(dsc, dx));
      const __m512 minv = _mm512_permutexvar_ps(pair, _mm512_castps256_ps512(_mm256_mul_ps(dmn, dx)));
      const __m512 s16 = _mm512_cvtepi32_ps(_mm512_loadu_si512(x.sum16[r] + sb * 16));
      mins[r] = _mm512_fmadd_ps(minv, s16, mins[r]);
      const int8_t* xq = x.q[r] + sb * 8 * QK;
      for (int c = 0; c < 4; ++c) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[c], _mm512_loadu_si512(xq + 64 * c));
        acc[r][c % C] = _mm512_fmadd_ps(_mm512_permutexvar_ps(sub[c], scale), _mm512_cvtepi32_ps(dot), acc[r][c % C]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_sub_ps(sum(acc[r]), mins[r]));
}

/** One Q6_K weight row (`supers` super-blocks of 210 bytes: ql[128], qh[64], int8 scales[16], fp16 d) against R ≤ 4
 *  activation rows. Weights 128h + 32p + l (l < 32): low 4 bits from ql[64h + 32(p & 1) + l] (high nibble for p ≥ 2),
 *  top 2 bits from qh[32h + l] >> 2p, scale sc[8h + 2p + l/16]; w = d·sc·(u − 32). Blocks p and p+1 (p even) share
 *  one register: lanes 4g'..4g'+3 hold the 16-value group g' of the pair. */
template <int R>
void q6k_rows_vnni(const uint8_t* row, int64_t supers, const ActivationRows& x, float* out) {
  constexpr int C = chains(R);
  __m512 acc[R][C], offsets[R];
  for (int r = 0; r < R; ++r) {
    offsets[r] = _mm512_setzero_ps();
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  const __m512i low = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(0x03);
  const __m512i pair = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);  // 16-value group → block
  __m512i group[4];  // lanes of a register pair starting at group 4i: 4i ×4, 4i+1 ×4, 4i+2 ×4, 4i+3 ×4
  for (int i = 0; i < 4; ++i) {
    const int g = 4 * i;
    group[i] = _mm512_setr_epi32(g, g, g, g, g + 1, g + 1, g + 1, g + 1, g + 2, g + 2, g + 2, g + 2, g + 3, g + 3, g + 3, g + 3);
  }
  for (int64_t sb = 0; sb < supers; ++sb) {
    const uint8_t* b = row + sb * 210;
    const __m512 dsc = _mm512_mul_ps(_mm512_set1_ps(f16(b + 208)),
                                     _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)))));
    __m512i u[4];  // pairs (h, p = 0,1) and (h, p = 2,3)
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b + 64 * h);
      const __m256i top = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
      const __m512i tops = _mm512_inserti64x4(_mm512_castsi256_si512(top), _mm256_srli_epi16(top, 2), 1);  // p, p+1
      u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low), _mm512_slli_epi16(_mm512_and_si512(tops, three), 4));
      u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low),
                                     _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(tops, 4), three), 4));
    }
    for (int r = 0; r < R; ++r) {
      const __m512 dx = _mm512_permutexvar_ps(pair, _mm512_castps256_ps512(_mm256_loadu_ps(x.d[r] + sb * 8)));
      const __m512 scale = _mm512_mul_ps(dsc, dx);  // d·sc·d_x per 16-value group
      offsets[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_loadu_si512(x.sum16[r] + sb * 16)), offsets[r]);
      const int8_t* xq = x.q[r] + sb * 8 * QK;
      for (int i = 0; i < 4; ++i) {
        const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[i], _mm512_loadu_si512(xq + 64 * i));
        acc[r][i % C] = _mm512_fmadd_ps(_mm512_permutexvar_ps(group[i], scale), _mm512_cvtepi32_ps(dot), acc[r][i % C]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(_mm512_fnmadd_ps(_mm512_set1_ps(32.0f), offsets[r], sum(acc[r])));
}

/** The row kernel for x.count activation rows. */
template <template <int> class Kernel>
void rows_vnni(const uint8_t* row, int64_t supers, const ActivationRows& x, float* out) {
  switch (x.count) {
    case 1: return Kernel<1>::run(row, supers, x, out);
    case 2: return Kernel<2>::run(row, supers, x, out);
    case 3: return Kernel<3>::run(row, supers, x, out);
    default: return Kernel<4>::run(row, supers, x, out);
  }
}
template <int R> struct Q4K { static void run(const uint8_t* w, int64_t s, const ActivationRows& x, float* o) { affine_rows_vnni<false, R>(w, s, x, o); } };
template <int R> struct Q5K { static void run(const uint8_t* w, int64_t s, const ActivationRows& x, float* o) { affine_rows_vnni<true, R>(w, s, x, o); } };
template <int R> struct Q6K { static void run(const uint8_t* w, int64_t s, const ActivationRows& x, float* o) { q6k_rows_vnni<R>(w, s, x, o); } };
#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace

void kquant_matmul_int8(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t supers = k / QK_K, row_bytes = supers * kquant_block_bytes(type);
  const QuantizedActivations xq(x, n, k);
  const auto row_kernel = type == SR_Q6_K ? rows_vnni<Q6K> : type == SR_Q5_K ? rows_vnni<Q5K> : rows_vnni<Q4K>;
  stream_rows(n, m, k, y, [&](int64_t j, int64_t i0, int count, float* out) {
    row_kernel(static_cast<const uint8_t*>(w) + j * row_bytes, supers, xq.rows(i0, count), out);
  });
}

}  // namespace sr
