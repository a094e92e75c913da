// The column-lane quantized product. Weights are taken in groups of 16 rows, interleaved (the layout of SR_Q8_0_X16 /
// SR_Q4_0_X16, saferlhf.h): for block b, 64-byte chunk c holds for each row r of the group (32-bit lane r) the bytes
// 4c .. 4c+3 of that row's block — Q4_0: 4 chunks of packed nibbles (the low nibbles are weights 4c .. 4c+3, the
// high ones 16+4c .. 16+4c+3); Q8_0: 8 chunks of w + 128 as unsigned bytes — and after all blocks' chunks the
// group's fp16 scales, block-major (16 per block). A block then takes 8 vpdpbusd per activation row, each against 4
// activation bytes broadcast to every lane, and its scales are applied once per 16 outputs:
//   y[r, c] += d_w[c, b] · d_x[r, b] · (Σ_j u[c, j] · x[r, j] − shift · Σ_j x[r, j])
// with shift 8 (Q4_0) or 128 (Q8_0). The integer sums are exact, so this is the row kernels' product up to the fp32
// order of the block sums. Weights stored interleaved are read in place (decode reads each weight byte once, no
// unpacking work per row); file-layout weights are interleaved one group per task per call.
#include "quant_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "column_lanes.h"
#include "parallel.h"
#include "quant_activations.h"
#include "quant_blocks.h"

namespace sr {
namespace {

// Decode (R ≤ 2) prefetches the group's values in bursts of 2 KiB, 4 KiB ahead: too little arithmetic per byte for the
// loads to run ahead on their own. Measured on 1 and 2 threads streaming the 110M and 7B shapes (docs/PERF.md): one
// line per line read, 1 KiB ahead, streamed 19–21 GB/s on one thread, these bursts 24–30.
constexpr int64_t kPrefetchBurst = 2048, kPrefetchAhead = 4096;

/** Bytes of the quantized values of one block for a whole group (the scales follow all blocks). */
constexpr int64_t group_block_bytes(bool q4) { return q4 ? 16 * kGroupRows : 32 * kGroupRows; }

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** y[i0 .. i0+R) × [j0 .. j0+cols) from one interleaved group. */
template <bool kQ4, int R>
void group_tile(const QuantizedActivations& x, int64_t blocks, int64_t i0, const uint8_t* group, int64_t j0, int cols, float* y,
                int64_t m) {
  constexpr int32_t kShift = kQ4 ? 8 : 128;  // the unsigned codes' offset: Q4_0 nibbles, Q8_0 bytes with the sign flipped
  const TileRows<R> t(x, i0);
  __m512 acc[R];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  constexpr int64_t qbytes = group_block_bytes(kQ4);
  const uint16_t* scales = reinterpret_cast<const uint16_t*>(group + blocks * qbytes);
  const __m512i low = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* p = group + b * qbytes;
    if constexpr (R <= 2) {
      if (b % (kPrefetchBurst / qbytes) == 0)
        #pragma GCC unroll 32
        for (int64_t c = 0; c < kPrefetchBurst; c += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + c), _MM_HINT_T0);
    }
    __m512i wv[QK / 4];  // wv[g]: weights 4g .. 4g+3 of the block for the 16 rows
    if constexpr (kQ4) {
      #pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const __m512i v = _mm512_loadu_si512(p + c * 64);
        wv[c] = _mm512_and_si512(v, low);
        wv[c + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
    } else {
      #pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) wv[c] = _mm512_loadu_si512(p + c * 64);
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + b * kGroupRows)));
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const int32_t* xr = reinterpret_cast<const int32_t*>(t.q[r] + b * QK);
      // the offset removed up front: −shift · Σ x over the block; two chains halve the latency
      __m512i even = _mm512_set1_epi32(-kShift * (t.sum16[r][2 * b] + t.sum16[r][2 * b + 1])), odd = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int g = 0; g < QK / 4; g += 2) {
        even = _mm512_dpbusd_epi32(even, wv[g], _mm512_set1_epi32(xr[g]));
        odd = _mm512_dpbusd_epi32(odd, wv[g + 1], _mm512_set1_epi32(xr[g + 1]));
      }
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
      acc[r] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw, _mm512_set1_ps(t.d[r][b])), acc[r]);
    }
  }
  const __mmask16 valid = static_cast<__mmask16>((1u << cols) - 1);
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + (i0 + r) * m + j0, valid, acc[r]);
}

#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace

bool is_interleaved(int32_t type) { return type == SR_Q8_0_X16 || type == SR_Q4_0_X16; }

int32_t file_type(int32_t type) {
  return type == SR_Q8_0_X16 ? SR_Q8_0 : type == SR_Q4_0_X16 ? SR_Q4_0 : type;
}

void interleave_group(int32_t type, const void* w, int64_t j0, int rows, int64_t blocks, uint8_t* group) {
  const bool q4 = file_type(type) == SR_Q4_0;
  const int64_t bb = q4 ? 18 : 34, qbytes = group_block_bytes(q4), row_bytes = blocks * bb;
  uint16_t* scales = reinterpret_cast<uint16_t*>(group + blocks * qbytes);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* out = group + b * qbytes;
    for (int r = 0; r < kGroupRows; ++r) {
      if (r >= rows) {
        for (int c = 0; c < qbytes / 64; ++c) std::memset(out + c * 64 + r * 4, 0, 4);
        scales[b * kGroupRows + r] = 0;
        continue;
      }
      const char* blk = static_cast<const char*>(w) + (j0 + r) * row_bytes + b * bb;
      std::memcpy(&scales[b * kGroupRows + r], blk, 2);
      const uint8_t* qs = reinterpret_cast<const uint8_t*>(blk + 2);
      for (int c = 0; c < qbytes / 64; ++c)
        for (int t = 0; t < 4; ++t) out[c * 64 + r * 4 + t] = q4 ? qs[c * 4 + t] : static_cast<uint8_t>(qs[c * 4 + t] ^ 0x80);
    }
  }
}

/** Block b of row j of interleaved weights as 32 signed weights in element order; returns the block's scale. */
float interleaved_block(int32_t type, const void* w, int64_t blocks, int64_t j, int64_t b, int8_t* q) {
  const bool q4 = file_type(type) == SR_Q4_0;
  const int64_t qbytes = group_block_bytes(q4);
  const uint8_t* group = static_cast<const uint8_t*>(w) + j / kGroupRows * blocks * (qbytes + 2 * kGroupRows);
  const uint16_t* scales = reinterpret_cast<const uint16_t*>(group + blocks * qbytes);
  const int r = static_cast<int>(j % kGroupRows);
  const uint8_t* p = group + b * qbytes + r * 4;
  for (int c = 0; c < qbytes / 64; ++c)
    for (int t = 0; t < 4; ++t) {
      const uint8_t u = p[c * 64 + t];
      if (q4) {
        q[c * 4 + t] = static_cast<int8_t>((u & 0x0F) - 8);
        q[QK / 2 + c * 4 + t] = static_cast<int8_t>((u >> 4) - 8);
      } else {
        q[c * 4 + t] = static_cast<int8_t>(u ^ 0x80);
      }
    }
  return half_to_float(scales[b * kGroupRows + r]);
}

void dequantize_interleaved(int32_t type, const void* w, int64_t blocks, int64_t j, int64_t b0, int64_t count, float* x) {
  int8_t q[QK];
  for (int64_t b = b0; b < b0 + count; ++b) {
    const float d = interleaved_block(type, w, blocks, j, b, q);
    for (int t = 0; t < QK; ++t) x[(b - b0) * QK + t] = static_cast<float>(q[t]) * d;
  }
}

void quant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const bool q4 = file_type(type) == SR_Q4_0, stored = is_interleaved(type);
  const int64_t blocks = k / QK, group_bytes = blocks * (group_block_bytes(q4) + 2 * kGroupRows);
  const QuantizedActivations xq(x, n, k);
  const int64_t groups = (m + kGroupRows - 1) / kGroupRows;
  // Tasks of several groups: one group of a decode row is too little work to pay for the shared task counter's cache
  // line moving between cores; 8 tasks per thread still let a thread that runs alone take over a busy core's share.
  const int threads = num_threads();
  const int64_t tasks = std::min<int64_t>(groups, 8 * static_cast<int64_t>(threads));
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    const int64_t g0 = groups * task / tasks, g1 = groups * (task + 1) / tasks;
    Buffer<uint8_t> local(stored ? 0 : static_cast<size_t>(group_bytes));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t j0 = g * kGroupRows;
      const int cols = static_cast<int>(std::min<int64_t>(kGroupRows, m - j0));
      const uint8_t* group = static_cast<const uint8_t*>(w) + g * group_bytes;
      if (!stored) {
        interleave_group(type, w, j0, cols, blocks, local.data());
        group = local.data();
      }
      for_each_tile(n, [&](auto rows, int64_t i0) {
        if (q4) group_tile<true, decltype(rows)::value>(xq, blocks, i0, group, j0, cols, y, m);
        else group_tile<false, decltype(rows)::value>(xq, blocks, i0, group, j0, cols, y, m);
      });
    }
  });
}

void quant_gemm_interleaved_scalar(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t blocks = k / QK;
  const QuantizedActivations xq(x, n, k);
  parallel_for(m, static_cast<double>(n * k), [&](int64_t jb, int64_t je) {
    int8_t q[QK];
    for (int64_t j = jb; j < je; ++j) {
      for (int64_t i = 0; i < n; ++i) y[i * m + j] = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const float dw = interleaved_block(type, w, blocks, j, b, q);
        for (int64_t i = 0; i < n; ++i) {
          const int8_t* xi = xq.q(i) + b * QK;
          int32_t s = 0;
          for (int t = 0; t < QK; ++t) s += static_cast<int32_t>(xi[t]) * q[t];
          y[i * m + j] += static_cast<float>(s) * dw * xq.d(i)[b];
        }
      }
    }
  });
}

}  // namespace sr
