// InterleaveRows: Q8_0 / Q4_0 / K-quant matrices in the file layout → the row-interleaved layout the column-lane
// products read in place (SR_Q8_0_X16, SR_Q4_0_X16: quant_gemm.cpp; SR_Q4_K_X16 .. SR_Q6_K_X16: kquant_x16.cpp; both
// defined in saferlhf.h).
#include <string>

#include "kquant.h"
#include "parallel.h"
#include "quant_blocks.h"
#include "quant_gemm.h"
#include "status.h"

extern "C" SR_API sr_status sr_interleave_rows_q(int32_t type, const void* src, void* dst, int64_t m, int64_t k) {
  if (sr::is_kquant_x16(type)) {
    if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK_K != 0)
      return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows_q: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                               " (need m a multiple of 16 and k of 256)");
    if (m == 0 || k == 0) return SR_OK;
    if (src == nullptr || dst == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows_q: null pointer");
    sr::kquant_interleave_rows(type, src, dst, m, k);
    return SR_OK;
  }
  if (!sr::is_interleaved(type))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows_q: type " + std::to_string(type) + " is not SR_Q8_0_X16, SR_Q4_0_X16 or SR_Q4_K_X16 .. SR_Q6_K_X16");
  if (m < 0 || k < 0 || m % sr::kGroupRows != 0 || k % sr::QK != 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows_q: m " + std::to_string(m) + ", k " + std::to_string(k) +
                                             " (need m a multiple of 16 and k of 32)");
  if (m == 0 || k == 0) return SR_OK;
  if (src == nullptr || dst == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_interleave_rows_q: null pointer");
  const int64_t blocks = k / sr::QK, group_bytes = sr::kGroupRows * blocks * sr::block_bytes(type);
  sr::parallel_for(m / sr::kGroupRows, static_cast<double>(group_bytes), [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g)
      sr::interleave_group(type, src, g * sr::kGroupRows, sr::kGroupRows, blocks, static_cast<uint8_t*>(dst) + g * group_bytes);
  });
  return SR_OK;
}
