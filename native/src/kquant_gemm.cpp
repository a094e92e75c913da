// The column-lane product for Q4_K / Q5_K / Q6_K weights and many activation rows (prefill, training forward). Each task
// unpacks 16 weight rows at a time into a group laid out as quant_gemm.cpp's Q8_0 groups: for every 32-block, 8 chunks
// of 64 bytes, chunk c holding the codes 4c .. 4c+3 of each row (32-bit lane r = row r) as unsigned bytes, then, after
// all blocks, two 16-float vectors per block:
//   Q4_K / Q5_K: d·sc and dmin·m of the row's 32-weight sub-block        (w = d·sc·q − dmin·m)
//   Q6_K:        d·sc of the values 0–15 and of the values 16–31         (w = d·sc·(u − 32))
// and every activation row (int8 per 32-block, quant_activations.h) meets them in a register tile: 8 vpdpbusd per block,
// each against 4 activation bytes broadcast to every lane, then per 16 outputs
//   Q4_K / Q5_K: y += d_x·(d·sc)·Σ q·x − d_x·Σx·(dmin·m)
//   Q6_K:        y += d_x·[(d·sc_lo)·(Σ_lo u·x − 32·Σ_lo x) + (d·sc_hi)·(Σ_hi u·x − 32·Σ_hi x)]
// The integer sums are exact and every scale product d·sc is exact in fp32, so this is the decode product of
// kquant_int8.cpp up to the fp32 order of the sums. Needs has_avx512_vnni().
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "column_lanes.h"
#include "kquant.h"
#include "parallel.h"
#include "quant_activations.h"

namespace sr {
namespace {

constexpr int QK = 32;
constexpr int kLanes = 16;                    // weight rows per group: one per 32-bit lane
constexpr int64_t kCodeBytes = QK * kLanes;   // codes of one block for the whole group
constexpr int64_t kScaleFloats = 2 * kLanes;  // two 16-float vectors per block

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

/** One K-quant weight row of `supers` super-blocks → its 256·supers codes as bytes (Q4_K 0–15, Q5_K 0–31, Q6_K 0–63)
 *  and per 32-block the pair (a, b) of the group layout above. */
void unpack_row(int32_t type, const uint8_t* row, int64_t supers, uint8_t* codes, float* a, float* b) {
  const int64_t bb = kquant_block_bytes(type);
  for (int64_t sb = 0; sb < supers; ++sb) {
    const uint8_t* blk = row + sb * bb;
    uint8_t* u = codes + sb * QK_K;
    if (type == SR_Q6_K) {
      const uint8_t* ql = blk;
      const uint8_t* qh = blk + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
      const float d = f16(blk + 208);
      for (int s = 0; s < 8; ++s) {
        a[sb * 8 + s] = d * sc[2 * s];
        b[sb * 8 + s] = d * sc[2 * s + 1];
      }
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 4; ++p)
          for (int l = 0; l < 32; ++l) {
            const int low = (ql[64 * h + 32 * (p & 1) + l] >> (4 * (p >> 1))) & 0xF;
            const int top = (qh[32 * h + l] >> (2 * p)) & 3;
            u[128 * h + 32 * p + l] = static_cast<uint8_t>(low | (top << 4));
          }
      continue;
    }
    const bool five = type == SR_Q5_K;
    const float d = f16(blk), dmin = f16(blk + 2);
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (five ? 48 : 16);
    for (int s = 0; s < 8; ++s) {
      int sc, mn;
      kquant_scale_min(blk + 4, s, &sc, &mn);
      a[sb * 8 + s] = d * sc;
      b[sb * 8 + s] = dmin * mn;
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        int q0 = qs[32 * c + l] & 0xF, q1 = qs[32 * c + l] >> 4;
        if (five) {
          q0 |= ((qh[l] >> (2 * c)) & 1) << 4;
          q1 |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        u[64 * c + l] = static_cast<uint8_t>(q0);
        u[64 * c + 32 + l] = static_cast<uint8_t>(q1);
      }
  }
}

/** Rows [j0, j0 + rows) of K-quant weights (rows ≤ 16; file layout, or interleaved by 16 with `row` as scratch for
 *  one row in the file layout) → one group; lanes past `rows` are zero codes with zero scales. `codes`, `a`, `b`: one
 *  row's scratch (k bytes, k/32 floats each). */
void pack_group(int32_t type, const void* w, int64_t j0, int rows, int64_t k, uint8_t* group, uint8_t* row, uint8_t* codes,
                float* a, float* b) {
  const bool interleaved = is_kquant_x16(type);
  const int32_t file = interleaved ? kquant_x16_file_type(type) : type;
  const int64_t blocks = k / QK, supers = k / QK_K, row_bytes = supers * kquant_block_bytes(file);
  float* scales = reinterpret_cast<float*>(group + blocks * kCodeBytes);
  for (int r = 0; r < kLanes; ++r) {
    if (r < rows && interleaved) {
      kquant_x16_row(type, w, k, j0 + r, row);
      unpack_row(file, row, supers, codes, a, b);
    } else if (r < rows) {
      unpack_row(file, static_cast<const uint8_t*>(w) + (j0 + r) * row_bytes, supers, codes, a, b);
    } else {
      std::memset(codes, 0, static_cast<size_t>(k));
      std::fill(a, a + blocks, 0.0f);
      std::fill(b, b + blocks, 0.0f);
    }
    for (int64_t blk = 0; blk < blocks; ++blk) {
      for (int c = 0; c < QK / 4; ++c) std::memcpy(group + blk * kCodeBytes + c * 64 + r * 4, codes + blk * QK + 4 * c, 4);
      scales[blk * kScaleFloats + r] = a[blk];
      scales[blk * kScaleFloats + kLanes + r] = b[blk];
    }
  }
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** y[i0 .. i0+R) × [j0 .. j0+cols) from one group. */
template <bool kSix, int R>
void group_tile(const QuantizedActivations& x, int64_t blocks, int64_t i0, const uint8_t* group, int64_t j0, int cols, float* y,
                int64_t m) {
  const TileRows<R> t(x, i0);
  __m512 acc[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const float* scales = reinterpret_cast<const float*>(group + blocks * kCodeBytes);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const uint8_t* p = group + blk * kCodeBytes;
    __m512i wv[QK / 4];  // wv[c]: codes 4c .. 4c+3 of the block for the 16 rows
    #pragma GCC unroll 8
    for (int c = 0; c < QK / 4; ++c) wv[c] = _mm512_loadu_si512(p + c * 64);
    const __m512 va = _mm512_loadu_ps(scales + blk * kScaleFloats), vb = _mm512_loadu_ps(scales + blk * kScaleFloats + kLanes);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int32_t* xr = reinterpret_cast<const int32_t*>(t.q[r] + blk * QK);
      const float dx = t.d[r][blk];
      if constexpr (kSix) {  // the two 16-value halves, each with its offset −32·Σx removed up front
        __m512i lo = _mm512_set1_epi32(-32 * t.sum16[r][2 * blk]), hi = _mm512_set1_epi32(-32 * t.sum16[r][2 * blk + 1]);
        #pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          lo = _mm512_dpbusd_epi32(lo, wv[c], _mm512_set1_epi32(xr[c]));
          hi = _mm512_dpbusd_epi32(hi, wv[c + 4], _mm512_set1_epi32(xr[c + 4]));
        }
        const __m512 t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), vb, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), va));
        acc[r] = _mm512_fmadd_ps(t, _mm512_set1_ps(dx), acc[r]);
      } else {  // two chains halve the latency
        __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int c = 0; c < QK / 4; c += 2) {
          even = _mm512_dpbusd_epi32(even, wv[c], _mm512_set1_epi32(xr[c]));
          odd = _mm512_dpbusd_epi32(odd, wv[c + 1], _mm512_set1_epi32(xr[c + 1]));
        }
        const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
        acc[r] = _mm512_fmadd_ps(dot, _mm512_mul_ps(va, _mm512_set1_ps(dx)), acc[r]);
        const float sum = static_cast<float>(t.sum16[r][2 * blk] + t.sum16[r][2 * blk + 1]);
        acc[r] = _mm512_fnmadd_ps(vb, _mm512_set1_ps(dx * sum), acc[r]);
      }
    }
  }
  const __mmask16 valid = static_cast<__mmask16>((1u << cols) - 1);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + (i0 + r) * m + j0, valid, acc[r]);
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace

void kquant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int32_t file = is_kquant_x16(type) ? kquant_x16_file_type(type) : type;
  const int64_t blocks = k / QK, group_bytes = blocks * (kCodeBytes + kScaleFloats * static_cast<int64_t>(sizeof(float)));
  const QuantizedActivations xq(x, n, k);
  const int64_t groups = (m + kLanes - 1) / kLanes;
  const int threads = num_threads();
  const int64_t tasks = std::min<int64_t>(groups, 8 * static_cast<int64_t>(threads));
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    const int64_t g0 = groups * task / tasks, g1 = groups * (task + 1) / tasks;
    Buffer<uint8_t> group(static_cast<size_t>(group_bytes)), codes(static_cast<size_t>(k));
    Buffer<uint8_t> row(is_kquant_x16(type) ? static_cast<size_t>(k / QK_K * kquant_block_bytes(file)) : 0);
    Buffer<float> a(static_cast<size_t>(blocks)), b(static_cast<size_t>(blocks));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t j0 = g * kLanes;
      const int cols = static_cast<int>(std::min<int64_t>(kLanes, m - j0));
      pack_group(type, w, j0, cols, k, group.data(), row.data(), codes.data(), a.data(), b.data());
      for_each_tile(n, [&](auto rows, int64_t i0) {
        if (file == SR_Q6_K) group_tile<true, decltype(rows)::value>(xq, blocks, i0, group.data(), j0, cols, y, m);
        else group_tile<false, decltype(rows)::value>(xq, blocks, i0, group.data(), j0, cols, y, m);
      });
    }
  });
}

}  // namespace sr
