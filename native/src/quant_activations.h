// The activations of the Q8_0 / Q4_0 matmuls (quantized_matmul.cpp): int8 per 32-block with an fp32 scale, and the
// per-lane bias terms of the VNNI kernels.
#pragma once
#include <cstdint>

namespace sr {

/** x [k] → q [k] int8 and d [k/32]: d = max|x|/127 per block, q = round(x/d) half away from zero (ggml's reference
 *  Q8_0 rounding, the scale kept in fp32); k a multiple of 32. AVX-512 when present, the same bits as the scalar
 *  reference quantize_activations_scalar. */
void quantize_activations(const float* x, int64_t k, int8_t* q, float* d);
void quantize_activations_scalar(const float* x, int64_t k, int8_t* q, float* d);

/** bias[l] = −shift × (q[4l] + … + q[4l + 3]) for `lanes` int32 lanes: the accumulator that removes an unsigned
 *  operand's offset `shift` from a vpdpbusd against q (8 for Q4_0 nibbles, 128 for Q8_0 bytes with the sign flipped). */
void lane_bias(const int8_t* q, int64_t lanes, int32_t shift, int32_t* bias);

}  // namespace sr
