// The column-lane quantized product (quant_gemm.cpp): Q8_0 / Q4_0 weights in groups of 16 rows interleaved so that
// one AVX-512 register holds 4 weights of a block for all 16 rows. Weights stored that way (SR_Q8_0_X16,
// SR_Q4_0_X16, saferlhf.h) are read in place at every row count; file-layout weights are interleaved group by
// group per call (from 32 activation rows; the register tile of quant_tile.cpp serves fewer).
#pragma once
#include <cstdint>

namespace sr {

constexpr int kGroupRows = 16;  // weight rows per interleaved group: one per 32-bit lane

/** True for SR_Q8_0_X16 and SR_Q4_0_X16. */
bool is_interleaved(int32_t type);
/** The file block type of an interleaved type (SR_Q8_0 or SR_Q4_0), or `type` itself. */
int32_t file_type(int32_t type);

/** Rows [j0, j0 + rows) of file-layout weights w (rows of `blocks` blocks, rows ≤ 16) → one interleaved group;
 *  rows past `rows` are zero with scale 0. */
void interleave_group(int32_t type, const void* w, int64_t j0, int rows, int64_t blocks, uint8_t* group);
/** Block b of row j of interleaved weights w (m rows of `blocks` blocks) as 32 signed weights in element order;
 *  returns the block's scale. */
float interleaved_block(int32_t type, const void* w, int64_t blocks, int64_t j, int64_t b, int8_t* q);
/** Blocks [b0, b0 + count) of row j of interleaved weights w (m rows of `blocks` blocks) → 32·count floats. */
void dequantize_interleaved(int32_t type, const void* w, int64_t blocks, int64_t j, int64_t b0, int64_t count, float* x);

/** y [n, m] = x [n, k] · wᵀ for Q8_0 / Q4_0 weights w [m, k] in the file layout or interleaved (m a multiple of 16),
 *  k a multiple of 32; the activations are quantized per 32-block as quantize_activations does. The file layout
 *  and the interleaved layout give the same bits. Needs has_avx512_vnni(). Throws std::bad_alloc. */
void quant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);

/** The same product for interleaved weights without AVX-512 VNNI: one output at a time, scalar code. */
void quant_gemm_interleaved_scalar(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);

}  // namespace sr
