// Dequantize: ggml Q8_0 / Q4_0 blocks (quant_blocks.cpp) and K-quant super-blocks (kquant.cpp) → fp32, and the
// row-interleaved Q8_0 / Q4_0 (quant_gemm.h) and K-quant (kquant.h) layouts, decoded row by row.
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

extern "C" SR_API sr_status sr_dequantize_f32_rows(int32_t type, const void* w, float* x, int64_t m, int64_t k) {
  if (sr::is_kquant_x16(type)) {
    if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK_K != 0)
      return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32_rows: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                               " (interleaved K-quant weights need m a multiple of 16 and k of 256)");
    if (m == 0 || k == 0) return SR_OK;
    if (x == nullptr || w == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32_rows: null pointer");
    sr::parallel_for(m, 4.0 * static_cast<double>(k), [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) sr::kquant_x16_dequantize_row(type, w, k, j, 0, k / sr::QK_K, x + j * k);
    });
    return SR_OK;
  }
  if (!sr::is_interleaved(type)) {
    if (m < 0 || k < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32_rows: negative size");
    return sr_dequantize_f32(type, w, x, m * k);
  }
  if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32_rows: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                             " (interleaved weights need m a multiple of 16 and k of 32)");
  if (m == 0 || k == 0) return SR_OK;
  if (x == nullptr || w == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_dequantize_f32_rows: null pointer");
  sr::parallel_for(m, static_cast<double>(k), [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) sr::dequantize_interleaved(type, w, k / sr::QK, j, 0, k / sr::QK, x + j * k);
  });
  return SR_OK;
}
