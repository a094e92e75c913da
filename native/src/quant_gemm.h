// The quantized GEMM for many activation rows (prefill, training): Q8_0 / Q4_0 weights, 16 weight rows per
// AVX-512 register (quant_gemm.cpp). The register tile for few rows is quantized_matmul.cpp's.
#pragma once
#include <cstdint>

namespace sr {

/** Whether quant_gemm can run here: AVX-512 with VNNI. */
bool has_quant_gemm();

/** y [n, m] = x [n, k] · wᵀ for Q8_0 or Q4_0 weights w [m, k/32 blocks], k a multiple of 32; the activations are
 *  quantized per 32-block as quantize_activations does. Throws std::bad_alloc. */
void quant_gemm(int32_t type, const float* x, const void* w, float* y, int64_t n, int64_t m, int64_t k);

}  // namespace sr
