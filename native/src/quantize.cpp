// Quantize: fp32 → ggml Q8_0 / Q4_0 blocks (the encoders are quant_blocks.cpp's). The K-quants are read from files,
// never produced.
#include <string>

#include "kquant.h"
#include "parallel.h"
#include "quant_blocks.h"
#include "status.h"

extern "C" SR_API sr_status sr_quantize_f32(int32_t type, const float* x, void* blocks, int64_t n) {
  sr_status st = sr::check_block_type("sr_quantize_f32", type);
  if (st != SR_OK) return st;
  if (sr::is_kquant(type)) return sr::fail(SR_UNSUPPORTED, "sr_quantize_f32: K-quant type " + std::to_string(type) + " is read from files, not produced");
  if (n < 0 || n % sr::QK != 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantize_f32: element count " + std::to_string(n) + " is not a multiple of 32");
  if (n == 0) return SR_OK;
  if (x == nullptr || blocks == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_quantize_f32: null pointer");
  sr::parallel_for(n / sr::QK, 200.0, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (type == SR_Q8_0) sr::quantize_q8(x + i * sr::QK, static_cast<sr::BlockQ8*>(blocks) + i);
      else sr::quantize_q4(x + i * sr::QK, static_cast<sr::BlockQ4*>(blocks) + i);
    }
  });
  return SR_OK;
}
