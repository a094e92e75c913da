// The quantized matmul's register tile for Q8_0 / Q4_0 weights and fewer than 32 activation rows (quant_gemm.cpp
// takes more): activation rows × weight rows of 512-bit int8 dot products, two 32-blocks per step.
#include "quant_tile.h"

#include <immintrin.h>

#include <algorithm>

#include "parallel.h"
#include "quant_activations.h"
#include "quant_blocks.h"

namespace sr {
namespace {

// ---------------- AVX-512 VNNI tile: R activation rows × C weight rows, two 32-blocks (64 int8) per step ----------------
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights are made the unsigned operand and a per-lane bias from
// the activations, passed in as the accumulator, removes the shift exactly (integer arithmetic, so the block dot
// products are exact):
//   Q8_0: Σ (w + 128)·x − 128·Σx   (w + 128 is w with its sign bit flipped)
//   Q4_0: Σ nib·x − 8·Σx            (the stored nibbles are unsigned already)
// Each lane holds a 4-byte partial dot of one block; lanes 0–7 belong to the first block, 8–15 to the second, so
// converting to fp32 and multiplying by the per-lane scale d_w·d_x accumulates exactly the scaled block sums.
// Per step the C weight rows are decoded once into registers and each activation row is loaded once for all of them.

/** The activations prepared once for the tile kernel; rows padded to a multiple of 64 bytes with zeros. */
struct XTile {
  int64_t stride;             // bytes (and int32 lanes ×4, floats ×4) per row: k rounded up to 64
  const int8_t* q;            // x as signed bytes
  const int32_t* bias;        // −128 (Q8_0) or −8 (Q4_0) × (sum of 4 consecutive x bytes) per lane
  const float* scale;         // d_x of the lane's block, per lane (stride / 4 floats per row)
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** [lo, hi] (written with masked inserts: GCC 12 reports the plain ones' undefined pass-through as uninitialized). */
inline __m512i join256(__m256i lo, __m256i hi) {
  const __m512i zero = _mm512_setzero_si512();
  return _mm512_mask_inserti64x4(zero, 0xFF, _mm512_mask_inserti64x4(zero, 0xFF, zero, lo, 0), hi, 1);
}

/** One weight row's step of two blocks as the unsigned dpbusd operand, and its per-lane scale d_w. */
struct WeightStep {
  __m512i w;
  __m512 d;
};

/** Q8_0 blocks b and b + 1 of a row (b + 1 only when second): w + 128 per byte, lanes 0–7 scaled by d_b, 8–15 by
 *  d_b+1 (0 for a missing second block, whose bytes are 0 as well). */
inline WeightStep weight_step_q8(const char* row, int64_t b, bool second) {
  const BlockQ8* blk = reinterpret_cast<const BlockQ8*>(row) + b;
  __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[0].qs));
  __m256i hi = second ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[1].qs)) : _mm256_set1_epi8(static_cast<char>(0x80));
  __m256i d = _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(second ? blk[1].d : 0)), _mm_set1_epi16(static_cast<short>(blk[0].d)));
  return {_mm512_xor_si512(join256(lo, hi), _mm512_set1_epi8(static_cast<char>(0x80))), _mm512_cvtph_ps(d)};
}

/** Q4_0 blocks b and b + 1 of a row: the 36 stored bytes in one load, the nibbles
 *  permuted into x's element order — [low of b, high of b, low of b + 1, high of b + 1] — and the two fp16 scales
 *  into lanes 0–7 and 8–15. A missing second block reads as zero bytes: nibbles 0 and scale 0. */
inline WeightStep weight_step_q4(const char* row, int64_t b, bool second, bool plain) {
  // Byte j of 128-bit lane L takes stored byte 2 + j (block b) or 20 + j (block b + 1): its qs after the 2-byte d.
  const __m512i pick = _mm512_set_epi8(35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                       35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                       17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                       17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2);
  // Words 0–7 take d of block b (word 0), words 8–15 d of block b + 1 (word 9, byte 18).
  const __m256i scales = _mm256_set_epi16(9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0);
  // plain: both blocks present and 64 bytes inside the matrix, so one plain load (the bytes past the pair, of the next
  // blocks or row, are dropped by the permutation); otherwise a byte-masked load, which costs tens of cycles here.
  const char* at = row + b * static_cast<int64_t>(sizeof(BlockQ4));
  __m512i raw = plain ? _mm512_loadu_si512(at) : _mm512_maskz_loadu_epi8(second ? 0xFFFFFFFFFull : 0x3FFFFull, at);
  __m512i packed = _mm512_permutexvar_epi8(pick, raw);
  __m512i nibbles = _mm512_mask_blend_epi64(0xCC, packed, _mm512_srli_epi16(packed, 4));
  __m256i d = _mm256_permutexvar_epi16(scales, _mm512_castsi512_si256(raw));
  return {_mm512_and_si512(nibbles, _mm512_set1_epi8(0x0F)), _mm512_cvtph_ps(d)};
}

template <int32_t Type>
inline WeightStep weight_step(const char* row, int64_t b, bool second, bool plain) {
  return Type == SR_Q8_0 ? weight_step_q8(row, b, second) : weight_step_q4(row, b, second, plain);
}

/** y[i0 .. i0+ni) × [j0 .. j0+nj) (ni ≤ R, nj ≤ C) over all k/32 blocks. The loops run over full R × C tiles; rows
 *  past ni or nj repeat the last valid one and their results are not stored. */
template <int32_t Type, int R, int C>
void tile_vnni(const XTile& x, int64_t i0, int ni, const char* w, int64_t row_bytes, int64_t j0, int nj,
               int64_t blocks, float* y, int64_t m) {
  const char* end = w + m * row_bytes;
  const int8_t* xq[R];
  const int32_t* xb[R];
  const float* xs[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const int64_t at = (i0 + std::min(r, ni - 1)) * x.stride;
    xq[r] = x.q + at;
    xb[r] = x.bias + at / 4;
    xs[r] = x.scale + at / 4;
  }
  const char* wr[C];
  #pragma GCC unroll 8
  for (int c = 0; c < C; ++c) wr[c] = w + (j0 + std::min(c, nj - 1)) * row_bytes;
  __m512 acc[R][C];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; b += 2) {
    const bool second = b + 1 < blocks;
    // Q4_0: the weight rows ascend (clamped ones repeat the last), so the last row bounds the 64-byte reads of all.
    const bool plain = Type == SR_Q4_0 && second && wr[C - 1] + b * static_cast<int64_t>(sizeof(BlockQ4)) + 64 <= end;
    WeightStep ws[C];
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) ws[c] = weight_step<Type>(wr[c], b, second, plain);
    const int64_t off = b * QK;  // byte offset of the step in an activation row
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m512i q = _mm512_loadu_si512(xq[r] + off);
      __m512i bias = _mm512_loadu_si512(xb[r] + off / 4);
      __m512 s = _mm512_loadu_ps(xs[r] + off / 4);
      #pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        __m512i dot = _mm512_dpbusd_epi32(bias, ws[c].w, q);
        acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[c].d, s), acc[r][c]);
      }
    }
  }
  float sums[R][C];  // reduced at compile-time indices, so acc stays in registers through the loop
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int c = 0; c < C; ++c) sums[r][c] = _mm512_reduce_add_ps(acc[r][c]);
  for (int r = 0; r < ni && r < R; ++r)
    for (int c = 0; c < nj && c < C; ++c) y[(i0 + r) * m + j0 + c] = sums[r][c];
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

/** Activation row i for the tile: int8 q, padded with zeros to the stride, its per-lane bias and per-lane scale. */
void prepare_tile_row(int32_t type, const float* x, int64_t k, int64_t stride, int8_t* q, float* d, int32_t* bias,
                      float* scale) {
  std::fill(q + k, q + stride, static_cast<int8_t>(0));
  quantize_activations(x, k, q, d);
  for (int64_t b = 0; b < k / QK; ++b) std::fill(scale + b * QK / 4, scale + (b + 1) * QK / 4, d[b]);  // 8 lanes a block
  std::fill(scale + k / 4, scale + stride / 4, 0.0f);
  lane_bias(q, stride / 4, type == SR_Q8_0 ? 128 : 8, bias);
}

/** Tasks of 32 weight rows (a panel that stays in L2) against every activation row, R × C at a time. */
template <int32_t Type, int R, int C>
void tile_tasks(const XTile& tile, const void* w, float* y, int64_t n, int64_t m, int64_t k, int64_t blocks,
                int64_t row_bytes) {
  constexpr int64_t kRowsPerTask = 32;
  int64_t tasks = (m + kRowsPerTask - 1) / kRowsPerTask;
  int threads = static_cast<double>(n) * m * k < 1e5 ? 1 : num_threads();
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    int64_t j0 = task * kRowsPerTask, j1 = std::min(m, j0 + kRowsPerTask);
    for (int64_t i0 = 0; i0 < n; i0 += R)
      for (int64_t j = j0; j < j1; j += C)
        tile_vnni<Type, R, C>(tile, i0, static_cast<int>(std::min<int64_t>(R, n - i0)), static_cast<const char*>(w),
                              row_bytes, j, static_cast<int>(std::min<int64_t>(C, j1 - j)), blocks, y, m);
  });
}

/** The tile shape by the number of activation rows: 4 × 4 (prefill, training), 3 × 4 and 2 × 4 (small batches), and
 *  for one row (decode) 1 × 8, eight weight rows streaming at once. */
template <int32_t Type>
void tile_tasks_for(const XTile& tile, const void* w, float* y, int64_t n, int64_t m, int64_t k, int64_t blocks,
                    int64_t row_bytes) {
  if (n >= 4) return tile_tasks<Type, 4, 4>(tile, w, y, n, m, k, blocks, row_bytes);
  if (n == 3) return tile_tasks<Type, 3, 4>(tile, w, y, n, m, k, blocks, row_bytes);
  if (n == 2) return tile_tasks<Type, 2, 4>(tile, w, y, n, m, k, blocks, row_bytes);
  tile_tasks<Type, 1, 8>(tile, w, y, n, m, k, blocks, row_bytes);
}

}  // namespace

bool has_quant_tile() {
  return has_avx512_vnni() && (cpu_features() & SR_CPU_AVX512VBMI);
}

void quant_tile_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t blocks = k / QK, row_bytes = blocks * block_bytes(type);
  const int64_t stride = (k + 63) / 64 * 64;
  Buffer<int8_t> xq(static_cast<size_t>(n * stride));
  Buffer<float> xd(static_cast<size_t>(n * blocks + 1));
  Buffer<int32_t> xbias(static_cast<size_t>(n * stride / 4));
  Buffer<float> xscale(static_cast<size_t>(n * stride / 4));
  parallel_for(n, 4.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      prepare_tile_row(type, x + i * k, k, stride, xq.data() + i * stride, xd.data() + i * blocks,
                       xbias.data() + i * stride / 4, xscale.data() + i * stride / 4);
  });
  const XTile tile{stride, xq.data(), xbias.data(), xscale.data()};
  if (type == SR_Q8_0) return tile_tasks_for<SR_Q8_0>(tile, w, y, n, m, k, blocks, row_bytes);
  tile_tasks_for<SR_Q4_0>(tile, w, y, n, m, k, blocks, row_bytes);
}

}  // namespace sr
