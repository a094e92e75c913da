// Dequantize: ggml Q8_0 / Q4_0 blocks (quant_blocks.cpp) and K-quant super-blocks (kquant.cpp) → fp32, and the
// interleaved Q8_0 / Q4_0 layouts (quant_gemm.h): made from the file layout and decoded row by row.
#include <string>

#include "kquant.h"
#include "parallel.h"
#include "quant_blocks.h"
#include "quant_gemm.h"
#include "status.h"

extern "C" SR_API sr_status sr_dequantize_f32(int32_t type, const void* blocks, float* x, int64_t n) {
  sr_status st = sr::check_block_type("sr_dequantize_f32", type);
  if (st != SR_OK) return st;
  const int64_t per = sr::block_elements(type);
  if (n < 0 || n % per != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32: element count " + std::to_string(n) + " is not a multiple of " + std::to_string(per));
  if (n == 0) return SR_OK;
  if (x == nullptr || blocks == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32: null pointer");
  const bool kquant = sr::is_kquant(type);
  sr::parallel_for(n / per, kquant ? 4.0 * per : 64.0, [&](int64_t b, int64_t e) {
    const char* src = static_cast<const char*>(blocks) + b * sr::block_bytes(type);
    if (kquant) sr::kquant_dequantize_row(type, src, e - b, x + b * per);
    else sr::dequantize_row(type, src, e - b, x + b * per);
  });
  return SR_OK;
}

extern "C" SR_API sr_status sr_interleave_rows(int32_t type, const void* src, void* dst, int64_t m, int64_t k) {
  if (!sr::is_interleaved(type))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows: type " + std::to_string(type) + " is not SR_Q8_0_X16 or SR_Q4_0_X16");
  if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                             " (need m a multiple of 16 and k of 32)");
  if (m == 0 || k == 0) return SR_OK;
  if (src == nullptr || dst == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows: null pointer");
  const int64_t blocks = k / sr::QK, group_bytes = sr::kGroupRows * blocks * sr::block_bytes(type);
  sr::parallel_for(m / sr::kGroupRows, static_cast<double>(group_bytes), [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g)
      sr::interleave_group(type, src, g * sr::kGroupRows, sr::kGroupRows, blocks, static_cast<uint8_t*>(dst) + g * group_bytes);
  });
  return SR_OK;
}

extern "C" SR_API sr_status sr_dequantize_rows_f32(int32_t type, const void* w, float* x, int64_t m, int64_t k) {
  if (!sr::is_interleaved(type)) {
    if (m < 0 || k < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_rows_f32: negative size");
    return sr_dequantize_f32(type, w, x, m * k);
  }
  if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_rows_f32: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                             " (interleaved weights need m a multiple of 16 and k of 32)");
  if (m == 0 || k == 0) return SR_OK;
  if (x == nullptr || w == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_rows_f32: null pointer");
  sr::parallel_for(m, static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) sr::dequantize_interleaved(type, w, k / sr::QK, j, 0, k / sr::QK, x + j * k);
  });
  return SR_OK;
}
