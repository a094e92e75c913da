// Q4_K / Q5_K / Q6_K weights with their rows interleaved by 16 (SR_Q4_K_X16, SR_Q5_K_X16, SR_Q6_K_X16; saferlhf.h):
// the layout, its dequantize and backward, and the product that reads it in place at every activation row count.
//
// Layout: a pure permutation of 4-byte words. Group g (rows 16g .. 16g+15) takes 16·B·S bytes (S super-blocks of B =
// 144, 176 or 210 bytes per row); in it super-block s fills 16·B bytes, whose 64-byte chunk t (t < B/4) holds, for
// row r of the group at bytes 4r .. 4r+3, the bytes 4t .. 4t+3 of that row's super-block s, followed (Q6_K, B = 4·52 +
// 2) by 32 bytes holding at 2r .. 2r+1 the row's last two bytes. So one 512-bit load gives the same word of 16 rows:
// Q4_K / Q5_K: chunk 0 their fp16 d and dmin, chunks 1–3 their packed 6-bit scales and mins, then (Q5_K) 8 chunks of
// high bits and 32 chunks of nibbles; Q6_K: 32 chunks of low nibbles, 16 of 2-bit tops, 4 of int8 scales, then the
// 16 fp16 d.
//
// Product (AVX-512 VNNI): the activations are rounded to int8 per 32-block (quant_activations.h), and for each pair of
// sub-blocks (2c, 2c+1) of a super-block — the low and high nibbles of the row's bytes 32c .. 32c+31 — 8 chunks give
// 4 codes of each sub-block for the 16 rows, each met by one vpdpbusd against 4 activation bytes broadcast to every
// lane. The scales and mins of the 16 rows are unpacked in registers (the bytewise form of kquant_scale_min), so
//   y[r, c] += d_x·(d·sc)·Σ q·x − d_x·Σx·(dmin·m)        per sub-block
// costs a few vector operations per 16 outputs: the exact product of the dequantized weights with the int8-rounded
// activations, up to fp32 order (the same model as kquant_int8.cpp and kquant_gemm.cpp). Q6_K the same way with its
// codes u = low | top << 4 (0..63), its 16-value groups' int8 scales and −32·Σx removed in the integer sums:
//   y[r, c] += d_x·(d·sc)·(Σ u·x − 32·Σx)                 per 16-value group
// Without VNNI each group is put back into the file layout and multiplied by kquant_matmul.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "column_lanes.h"
#include "kquant.h"
#include "panel_backward.h"
#include "parallel.h"
#include "quant_activations.h"

namespace sr {
namespace {

constexpr int QK = 32;
constexpr int kLanes = 16;              // rows per group: one per 32-bit lane
constexpr int64_t kPrefetchSupers = 1;  // super-blocks ahead that decode prefetches
// From this many activation rows kquant_gemm's byte-per-code groups (unpacked per call) beat reading the nibbles in
// place: measured at 512 × 11008 × 4096, 60 against 72 ms.
constexpr int64_t kGemmRowsX16 = 64;

/** Bytes of super-block s of row r of a group, gathered into the file layout (bb bytes). */
void gather(const uint8_t* group, int64_t bb, int64_t s, int r, uint8_t* out) {
  const uint8_t* p = group + s * kLanes * bb;
  const int64_t words = bb / 4;
  for (int64_t t = 0; t < words; ++t) std::memcpy(out + 4 * t, p + 64 * t + 4 * r, 4);
  if (bb % 4 != 0) std::memcpy(out + 4 * words, p + 64 * words + 2 * r, 2);
}

/** The inverse of gather: row r's super-block s (bb bytes, file layout) into its group. */
void scatter(const uint8_t* in, int64_t bb, int64_t s, int r, uint8_t* group) {
  uint8_t* p = group + s * kLanes * bb;
  const int64_t words = bb / 4;
  for (int64_t t = 0; t < words; ++t) std::memcpy(p + 64 * t + 4 * r, in + 4 * t, 4);
  if (bb % 4 != 0) std::memcpy(p + 64 * words + 2 * r, in + 4 * words, 2);
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** Byte j (0..3) of every 32-bit lane as floats. */
inline __m512 byte_ps(__m512i v, int j) {
  return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, 8 * j), _mm512_set1_epi32(0xFF)));
}

/** Accumulator chains per activation row: one row alone would wait on its FMA chain. */
constexpr int chains(int rows) { return rows == 1 ? 4 : rows == 2 ? 2 : 1; }

/** Prefetches `bytes` bytes at p into L1. */
inline void prefetch(const uint8_t* p, int64_t bytes) {
  for (int64_t c = 0; c < bytes; c += 64) _mm_prefetch(reinterpret_cast<const char*>(p + c), _MM_HINT_T0);
}

template <int R, int C>
inline void zero(__m512 (&acc)[R][C]) {
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
}

/** y[r, 0..16) = the sum of row r's chains, rows `stride` floats apart. */
template <int R, int C>
inline void store_rows(__m512 (&acc)[R][C], float* y, int64_t stride) {
  for (int r = 0; r < R; ++r) {
    __m512 sum = acc[r][0];
    for (int c = 1; c < C; ++c) sum = _mm512_add_ps(sum, acc[r][c]);
    _mm512_storeu_ps(y + r * stride, sum);
  }
}

/** y[i0 .. i0+R) × [j0 .. j0+16) from one group. */
template <bool kFive, int R>
void group_tile(const QuantizedActivations& x, int64_t supers, int64_t i0, const uint8_t* group, int64_t j0, float* y, int64_t m) {
  constexpr int64_t bb = kFive ? 176 : 144, sbytes = kLanes * bb;
  constexpr int64_t qs_chunk = kFive ? 12 : 4;  // the first chunk of nibbles (after d/dmin, scales, and Q5_K's high bits)
  constexpr int C = chains(R);
  const TileRows<R> t(x, i0);
  __m512 acc[R][C];
  zero(acc);
  const __m512i low = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(0x01);
  const __m512i six = _mm512_set1_epi8(0x3F), two = _mm512_set1_epi8(0x03);
  for (int64_t s = 0; s < supers; ++s) {
    const uint8_t* p = group + s * sbytes;
    if constexpr (R <= 2) prefetch(p + kPrefetchSupers * sbytes, sbytes);  // too little arithmetic per byte to run ahead
    const __m512i head = _mm512_loadu_si512(p);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(head));
    const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(head, 16)));
    const __m512i u0 = _mm512_loadu_si512(p + 64), u1 = _mm512_loadu_si512(p + 128), u2 = _mm512_loadu_si512(p + 192);
    // Scales and mins of sub-blocks 0–3 (bytes of sc_a, mn_a) and 4–7 (sc_b, mn_b), per lane.
    const __m512i sc_a = _mm512_and_si512(u0, six), mn_a = _mm512_and_si512(u1, six);
    const __m512i sc_b = _mm512_or_si512(_mm512_and_si512(u2, low), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), two), 4));
    const __m512i mn_b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low),
                                         _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), two), 4));
    #pragma GCC unroll 1
    for (int c = 0; c < 4; ++c) {  // sub-blocks 2c (low nibbles) and 2c+1 (high nibbles)
      const __m512i& sc = c < 2 ? sc_a : sc_b;
      const __m512i& mn = c < 2 ? mn_a : mn_b;
      const int j = 2 * (c & 1);
      const __m512 ds0 = _mm512_mul_ps(d, byte_ps(sc, j)), ds1 = _mm512_mul_ps(d, byte_ps(sc, j + 1));
      const __m512 dm0 = _mm512_mul_ps(dmin, byte_ps(mn, j)), dm1 = _mm512_mul_ps(dmin, byte_ps(mn, j + 1));
      __m512i lo[R], hi[R];
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int e = 0; e < 8; ++e) {  // bytes 4e .. 4e+3 of the 32: codes 4e .. 4e+3 of both sub-blocks
        const __m512i v = _mm512_loadu_si512(p + 64 * (qs_chunk + 8 * c + e));
        __m512i wl = _mm512_and_si512(v, low), wh = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
        if constexpr (kFive) {
          const __m512i h = _mm512_loadu_si512(p + 64 * (4 + e));
          wl = _mm512_or_si512(wl, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 2 * c), one), 4));
          wh = _mm512_or_si512(wh, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, 2 * c + 1), one), 4));
        }
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const int8_t* xr = t.q[r] + s * QK_K + 64 * c + 4 * e;
          int32_t x0, x1;
          std::memcpy(&x0, xr, 4);
          std::memcpy(&x1, xr + 32, 4);
          lo[r] = _mm512_dpbusd_epi32(lo[r], wl, _mm512_set1_epi32(x0));
          hi[r] = _mm512_dpbusd_epi32(hi[r], wh, _mm512_set1_epi32(x1));
        }
      }
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int64_t b0 = 8 * s + 2 * c;  // the activation blocks of the two sub-blocks
        const float dx0 = t.d[r][b0], dx1 = t.d[r][b0 + 1];
        const float sx0 = dx0 * static_cast<float>(t.sum16[r][2 * b0] + t.sum16[r][2 * b0 + 1]);
        const float sx1 = dx1 * static_cast<float>(t.sum16[r][2 * b0 + 2] + t.sum16[r][2 * b0 + 3]);
        __m512& a0 = acc[r][0 % C];
        a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[r]), _mm512_mul_ps(ds0, _mm512_set1_ps(dx0)), a0);
        __m512& a1 = acc[r][1 % C];
        a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[r]), _mm512_mul_ps(ds1, _mm512_set1_ps(dx1)), a1);
        __m512& a2 = acc[r][2 % C];
        a2 = _mm512_fnmadd_ps(dm0, _mm512_set1_ps(sx0), a2);
        __m512& a3 = acc[r][3 % C];
        a3 = _mm512_fnmadd_ps(dm1, _mm512_set1_ps(sx1), a3);
      }
    }
  }
  store_rows(acc, y + i0 * m + j0, m);
}

/** Q6_K: y[i0 .. i0+R) × [j0 .. j0+16) from one group. Weight 128h + 32p + l of a super-block (l = 4e + i): low 4
 *  bits from the row's byte 64h + 32(p & 1) + l (its high nibble for p ≥ 2), top 2 bits from byte 128 + 32h + l,
 *  shifted by 2p; the scale of its 16-value group 8h + 2p + (l ≥ 16) is byte 192 + that group. */
template <int R>
void q6_group_tile(const QuantizedActivations& x, int64_t supers, int64_t i0, const uint8_t* group, int64_t j0, float* y, int64_t m) {
  constexpr int64_t sbytes = kLanes * 210;
  constexpr int C = chains(R);
  const TileRows<R> t(x, i0);
  __m512 acc[R][C];
  zero(acc);
  const __m512i low = _mm512_set1_epi8(0x0F), three = _mm512_set1_epi8(0x03);
  for (int64_t s = 0; s < supers; ++s) {
    const uint8_t* p = group + s * sbytes;
    if constexpr (R <= 2) prefetch(p + kPrefetchSupers * sbytes, sbytes);  // too little arithmetic per byte to run ahead
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * 52)));
    #pragma GCC unroll 1
    for (int hp = 0; hp < 8; ++hp) {  // the 32-value block 4h + p of the super-block
      const int h = hp >> 2, q = hp & 3;
      const __m512i scales = _mm512_loadu_si512(p + 64 * (48 + 2 * h + (q >> 1)));  // int8 scales 8h + 4(p/2) .. +3
      const int g = 2 * (q & 1);  // byte of the lane holding the scale of values 0–15 (g + 1: values 16–31)
      const __m512 s0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(scales, 24 - 8 * g), 24)));
      const __m512 s1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(scales, 16 - 8 * g), 24)));
      const int64_t blk = 8 * s + hp;  // the activation block
      __m512i lo[R], hi[R];
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        lo[r] = _mm512_set1_epi32(-32 * t.sum16[r][2 * blk]);
        hi[r] = _mm512_set1_epi32(-32 * t.sum16[r][2 * blk + 1]);
      }
      #pragma GCC unroll 8
      for (int e = 0; e < 8; ++e) {
        const __m512i bytes = _mm512_loadu_si512(p + 64 * (16 * h + 8 * (q & 1) + e));
        const __m512i tops = _mm512_loadu_si512(p + 64 * (32 + 8 * h + e));
        const __m512i nib = _mm512_and_si512(q >= 2 ? _mm512_srli_epi16(bytes, 4) : bytes, low);
        const __m512i top = _mm512_and_si512(_mm512_srli_epi16(tops, 2 * q), three);
        const __m512i u = _mm512_or_si512(nib, _mm512_slli_epi16(top, 4));
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          int32_t xv;
          std::memcpy(&xv, t.q[r] + blk * QK + 4 * e, 4);
          if (e < 4) lo[r] = _mm512_dpbusd_epi32(lo[r], u, _mm512_set1_epi32(xv));
          else hi[r] = _mm512_dpbusd_epi32(hi[r], u, _mm512_set1_epi32(xv));
        }
      }
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 dx = _mm512_set1_ps(t.d[r][blk]);
        __m512& a0 = acc[r][(2 * hp) % C];
        a0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[r]), _mm512_mul_ps(s0, dx), a0);
        __m512& a1 = acc[r][(2 * hp + 1) % C];
        a1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[r]), _mm512_mul_ps(s1, dx), a1);
      }
    }
  }
  store_rows(acc, y + i0 * m + j0, m);
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace

bool is_kquant_x16(int32_t type) { return type == SR_Q4_K_X16 || type == SR_Q5_K_X16 || type == SR_Q6_K_X16; }

int32_t kquant_x16_file_type(int32_t type) { return type == SR_Q4_K_X16 ? SR_Q4_K : type == SR_Q5_K_X16 ? SR_Q5_K : SR_Q6_K; }

void kquant_interleave_rows(int32_t type, const void* src, void* dst, int64_t m, int64_t k) {
  const int64_t bb = kquant_block_bytes(kquant_x16_file_type(type)), supers = k / QK_K, row_bytes = supers * bb;
  parallel_for(m, static_cast<double>(row_bytes), [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const uint8_t* row = static_cast<const uint8_t*>(src) + j * row_bytes;
      uint8_t* group = static_cast<uint8_t*>(dst) + j / kLanes * kLanes * row_bytes;
      for (int64_t s = 0; s < supers; ++s) scatter(row + s * bb, bb, s, static_cast<int>(j % kLanes), group);
    }
  });
}

void kquant_x16_row(int32_t type, const void* w, int64_t k, int64_t j, uint8_t* row) {
  const int64_t bb = kquant_block_bytes(kquant_x16_file_type(type)), supers = k / QK_K;
  const uint8_t* group = static_cast<const uint8_t*>(w) + j / kLanes * kLanes * supers * bb;
  for (int64_t s = 0; s < supers; ++s) gather(group, bb, s, static_cast<int>(j % kLanes), row + s * bb);
}

void kquant_x16_dequantize_row(int32_t type, const void* w, int64_t k, int64_t j, int64_t s0, int64_t count, float* x) {
  const int32_t file = kquant_x16_file_type(type);
  const int64_t bb = kquant_block_bytes(file), row_bytes = k / QK_K * bb;
  const uint8_t* group = static_cast<const uint8_t*>(w) + j / kLanes * kLanes * row_bytes;
  uint8_t block[210];
  for (int64_t s = s0; s < s0 + count; ++s) {
    gather(group, bb, s, static_cast<int>(j % kLanes), block);
    kquant_dequantize_row(file, block, 1, x + (s - s0) * QK_K);
  }
}

void kquant_x16_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int32_t file = kquant_x16_file_type(type);
  const int64_t supers = k / QK_K, group_bytes = kLanes * supers * kquant_block_bytes(file), groups = m / kLanes;
  if (!has_avx512_vnni()) {  // each group back in the file layout, through the fp32 K-quant product
    Buffer<uint8_t> rows(static_cast<size_t>(group_bytes));
    Buffer<float> out(static_cast<size_t>(n * kLanes));
    for (int64_t g = 0; g < groups; ++g) {
      for (int r = 0; r < kLanes; ++r) kquant_x16_row(type, w, k, g * kLanes + r, rows.data() + r * (group_bytes / kLanes));
      kquant_matmul(file, x, rows.data(), out.data(), n, kLanes, k);
      for (int64_t i = 0; i < n; ++i) std::memcpy(y + i * m + g * kLanes, out.data() + i * kLanes, kLanes * sizeof(float));
    }
    return;
  }
  if (n >= kGemmRowsX16) return kquant_gemm(type, x, w, y, n, m, k);
  const QuantizedActivations xq(x, n, k);
  const int threads = num_threads();
  const int64_t tasks = std::min<int64_t>(groups, 8 * static_cast<int64_t>(threads));
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    for (int64_t g = groups * task / tasks; g < groups * (task + 1) / tasks; ++g) {
      const uint8_t* group = static_cast<const uint8_t*>(w) + g * group_bytes;
      for_each_tile(n, [&](auto rows, int64_t i0) {
        constexpr int R = decltype(rows)::value;
        if (file == SR_Q6_K) q6_group_tile<R>(xq, supers, i0, group, g * kLanes, y, m);
        else if (file == SR_Q5_K) group_tile<true, R>(xq, supers, i0, group, g * kLanes, y, m);
        else group_tile<false, R>(xq, supers, i0, group, g * kLanes, y, m);
      });
    }
  });
}

void kquant_x16_matmul_backward(int32_t type, const float* dy, const void* w, float* dx, int64_t n, int64_t m, int64_t k) {
  backward_by_panels(dy, dx, n, m, k, [&](int64_t j, int64_t c0, int64_t cols, float* out) {
    kquant_x16_dequantize_row(type, w, k, j, c0 / QK_K, cols / QK_K, out);
  });
}

}  // namespace sr
