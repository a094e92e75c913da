// ggml Q8_0 / Q4_0 blocks (32 weights each), shared by quantize.cpp, dequantize.cpp and quantized_matmul.cpp: the
// layouts, their scalar encoders and decoders (the layouts' definition) and the storage-type checks of the sr_ entry
// points. The K-quant super-blocks are kquant.h's; the BF16 weights of the matmul are bf16_matmul.h's.
#pragma once
#include <cstdint>

#include "saferlhf.h"

namespace sr {

constexpr int QK = 32;

struct BlockQ8 {
  uint16_t d;
  int8_t qs[QK];
};
struct BlockQ4 {
  uint16_t d;
  uint8_t qs[QK / 2];
};
static_assert(sizeof(BlockQ8) == 34, "Q8_0 block is 34 bytes");
static_assert(sizeof(BlockQ4) == 18, "Q4_0 block is 18 bytes");

/** 32 floats → one block (ggml's rounding). */
void quantize_q8(const float* x, BlockQ8* blk);
void quantize_q4(const float* x, BlockQ4* blk);
/** `blocks` Q8_0 or Q4_0 blocks → 32·blocks floats. */
void dequantize_row(int32_t type, const void* w, int64_t blocks, float* x);

/** Bytes of one block (super-block for the K-quants) of a block type. */
int64_t block_bytes(int32_t type);
/** Weights per block: 32, or 256 for the K-quants. */
int64_t block_elements(int32_t type);
/** SR_OK for Q8_0, Q4_0 and the K-quants; otherwise SR_INVALID_ARGUMENT naming the entry point. */
sr_status check_block_type(const char* name, int32_t type);

}  // namespace sr
