// Quantized GEMM with the output columns in the register lanes: each task repacks a panel of 16 weight rows so that
// one 512-bit register holds 4 consecutive weights of a block for all 16 rows, as unsigned bytes (Q4_0: the nibbles;
// Q8_0: w + 128). A block then takes 8 vpdpbusd per activation row, each against 4 activation bytes broadcast to
// every lane, and the block's scales are applied once per 16 outputs:
//   y[r, c] += d_w[c, b] · d_x[r, b] · (Σ_j u[c, j] · x[r, j] − shift · Σ_j x[r, j])
// with shift 8 (Q4_0) or 128 (Q8_0); the integer sums are exact, so this is the same product as the row kernels up
// to the fp32 order of the block sums. The repacking costs one pass over the panel and is shared by all n rows.
#include "quant_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "parallel.h"
#include "quant_activations.h"
#include "quant_blocks.h"

namespace sr {
namespace {

constexpr int kCols = 16;   // weight rows per panel: one per 32-bit lane
constexpr int kRows = 8;    // activation rows per register tile

/** Block b of weight row `row` as 32 unsigned bytes in element order, and its scale. */
float unsigned_block(int32_t type, const char* row, int64_t b, uint8_t* u) {
  if (type == SR_Q8_0) {
    const BlockQ8* blk = reinterpret_cast<const BlockQ8*>(row) + b;
    for (int j = 0; j < QK; ++j) u[j] = static_cast<uint8_t>(blk->qs[j] ^ 0x80);
    return half_to_float(blk->d);
  }
  const BlockQ4* blk = reinterpret_cast<const BlockQ4*>(row) + b;
  for (int j = 0; j < QK / 2; ++j) {
    u[j] = blk->qs[j] & 0x0F;
    u[j + QK / 2] = blk->qs[j] >> 4;
  }
  return half_to_float(blk->d);
}

/** Panel layout per block: 8 groups × 16 lanes × 4 bytes (group g, lane c: weights 4g..4g+3 of row c), then 16 fp32
 *  scales. Rows past m are zero (scale 0). */
constexpr int64_t kPanelBlockBytes = QK * kCols + kCols * 4;

void repack_panel(int32_t type, const char* w, int64_t row_bytes, int64_t j0, int cols, int64_t blocks, uint8_t* panel) {
  alignas(64) uint8_t u[QK];
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* out = panel + b * kPanelBlockBytes;
    float* scales = reinterpret_cast<float*>(out + QK * kCols);
    for (int c = 0; c < kCols; ++c) {
      if (c >= cols) {
        for (int g = 0; g < QK / 4; ++g) std::memset(out + g * 64 + c * 4, 0, 4);
        scales[c] = 0.0f;
        continue;
      }
      scales[c] = unsigned_block(type, w + (j0 + c) * row_bytes, b, u);
      for (int g = 0; g < QK / 4; ++g) std::memcpy(out + g * 64 + c * 4, u + g * 4, 4);
    }
  }
}

/** The activations: int8 q [n, k], scales d [n, blocks] and per-block bias −shift · Σ q [n, blocks]. */
struct XBlocks {
  const int8_t* q;
  const float* d;
  const int32_t* bias;
  int64_t k, blocks;
};

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

/** y[i0 .. i0+ni) × [j0 .. j0+cols) from a repacked panel; rows past ni repeat the last and are not stored. */
void panel_tile(const XBlocks& x, int64_t i0, int ni, const uint8_t* panel, int64_t j0, int cols, float* y, int64_t m) {
  const int8_t* xq[kRows];
  const float* xd[kRows];
  const int32_t* xb[kRows];
  #pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = i0 + std::min(r, ni - 1);
    xq[r] = x.q + i * x.k;
    xd[r] = x.d + i * x.blocks;
    xb[r] = x.bias + i * x.blocks;
  }
  __m512 acc[kRows];
  #pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    const uint8_t* p = panel + b * kPanelBlockBytes;
    __m512i wv[QK / 4];
    #pragma GCC unroll 8
    for (int g = 0; g < QK / 4; ++g) wv[g] = _mm512_load_si512(p + g * 64);
    const __m512 dw = _mm512_load_ps(reinterpret_cast<const float*>(p + QK * kCols));
    #pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const int32_t* xr = reinterpret_cast<const int32_t*>(xq[r] + b * QK);
      __m512i even = _mm512_set1_epi32(xb[r][b]), odd = _mm512_setzero_si512();  // two chains halve the latency
      #pragma GCC unroll 8
      for (int g = 0; g < QK / 4; g += 2) {
        even = _mm512_dpbusd_epi32(even, wv[g], _mm512_set1_epi32(xr[g]));
        odd = _mm512_dpbusd_epi32(odd, wv[g + 1], _mm512_set1_epi32(xr[g + 1]));
      }
      __m512 dot = _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd));
      acc[r] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw, _mm512_set1_ps(xd[r][b])), acc[r]);
    }
  }
  const __mmask16 valid = static_cast<__mmask16>((1u << cols) - 1);
  for (int r = 0; r < ni && r < kRows; ++r) _mm512_mask_storeu_ps(y + (i0 + r) * m + j0, valid, acc[r]);
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

}  // namespace

bool has_quant_gemm() {
  uint32_t f = cpu_features();
  return has_avx512() && (f & SR_CPU_AVX512VNNI) && has_avx2_fma();
}

void quant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k) {
  const int64_t blocks = k / QK, row_bytes = blocks * block_bytes(type);
  Buffer<int8_t> xq(static_cast<size_t>(n * k));
  Buffer<float> xd(static_cast<size_t>(n * blocks));
  Buffer<int32_t> xbias(static_cast<size_t>(n * blocks));
  const int32_t shift = type == SR_Q8_0 ? 128 : 8;
  parallel_for(n, 4.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int8_t* q = xq.data() + i * k;
      quantize_activations(x + i * k, k, q, xd.data() + i * blocks);
      for (int64_t blk = 0; blk < blocks; ++blk) {
        int32_t s = 0;
        for (int j = 0; j < QK; ++j) s += q[blk * QK + j];
        xbias[static_cast<size_t>(i * blocks + blk)] = -shift * s;
      }
    }
  });
  const XBlocks xb{xq.data(), xd.data(), xbias.data(), k, blocks};
  const int64_t panels = (m + kCols - 1) / kCols;
  parallel_tasks(panels, num_threads(), [&](int64_t task, int) {
    const int64_t j0 = task * kCols;
    const int cols = static_cast<int>(std::min<int64_t>(kCols, m - j0));
    Buffer<uint8_t> panel(static_cast<size_t>(blocks * kPanelBlockBytes));
    repack_panel(type, static_cast<const char*>(w), row_bytes, j0, cols, blocks, panel.data());
    for (int64_t i0 = 0; i0 < n; i0 += kRows)
      panel_tile(xb, i0, static_cast<int>(std::min<int64_t>(kRows, n - i0)), panel.data(), j0, cols, y, m);
  });
}

}  // namespace sr
