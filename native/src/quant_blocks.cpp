// ggml Q8_0 / Q4_0 block encoders and decoders (quant_blocks.h) and sr_quant_block_bytes.
#include "quant_blocks.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kquant.h"
#include "parallel.h"
#include "status.h"

namespace sr {
namespace {

void dequantize_q8(const BlockQ8* blk, float* x) {
  float d = half_to_float(blk->d);
  for (int j = 0; j < QK; ++j) x[j] = blk->qs[j] * d;
}

void dequantize_q4(const BlockQ4* blk, float* x) {
  float d = half_to_float(blk->d);
  for (int j = 0; j < QK / 2; ++j) {
    x[j] = ((blk->qs[j] & 0x0F) - 8) * d;
    x[j + QK / 2] = ((blk->qs[j] >> 4) - 8) * d;
  }
}

}  // namespace

void quantize_q8(const float* x, BlockQ8* blk) {
  float amax = 0.0f;
  for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
  float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  blk->d = float_to_half(d);
  for (int j = 0; j < QK; ++j) blk->qs[j] = static_cast<int8_t>(std::round(x[j] * id));
}

void quantize_q4(const float* x, BlockQ4* blk) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  blk->d = float_to_half(d);
  for (int j = 0; j < QK / 2; ++j) {
    int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
    int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + QK / 2] * id + 8.5f)));
    blk->qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void dequantize_row(int32_t type, const void* w, int64_t blocks, float* x) {
  if (type == SR_Q8_0) {
    const BlockQ8* b = static_cast<const BlockQ8*>(w);
    for (int64_t i = 0; i < blocks; ++i) dequantize_q8(b + i, x + i * QK);
  } else {
    const BlockQ4* b = static_cast<const BlockQ4*>(w);
    for (int64_t i = 0; i < blocks; ++i) dequantize_q4(b + i, x + i * QK);
  }
}

int64_t block_bytes(int32_t type) {
  if (is_kquant_x16(type)) return kquant_block_bytes(kquant_x16_file_type(type));
  return is_kquant(type) ? kquant_block_bytes(type) : type == SR_Q8_0 || type == SR_Q8_0_X16 ? 34 : 18;
}

int64_t block_elements(int32_t type) { return is_kquant(type) || is_kquant_x16(type) ? QK_K : QK; }

sr_status check_block_type(const char* name, int32_t type) {
  if (type != SR_Q8_0 && type != SR_Q4_0 && !is_kquant(type))
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": unknown block type " + std::to_string(type));
  return SR_OK;
}

}  // namespace sr

extern "C" SR_API sr_status sr_quant_block_bytes(int32_t type, int32_t* bytes) {
  sr_status st = sr::check_block_type("sr_quant_block_bytes", type);
  if (st != SR_OK) return st;
  if (bytes == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_quant_block_bytes: bytes is null");
  *bytes = static_cast<int32_t>(sr::block_bytes(type));
  return SR_OK;
}
