// The register tile of the Q8_0 / Q4_0 quantized matmul (quant_tile.cpp).
#pragma once
#include <cstdint>

namespace sr {

/** Whether quant_tile_matmul can run here: AVX-512 with VNNI, VBMI and F16C. */
bool has_quant_tile();

/** y [n, m] = x [n, k] · wᵀ for Q8_0 or Q4_0 weights w [m, k/32 blocks], k a multiple of 32, n > 0: activations
 *  quantized per 32-block (quant_activations.h), then register tiles of 4 × 4, 3 × 4, 2 × 4 or 1 × 8 (activation rows ×
 *  weight rows) by the row count. Throws std::bad_alloc. */
void quant_tile_matmul(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);

}  // namespace sr
