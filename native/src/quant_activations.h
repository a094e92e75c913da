// The activations of the int8 quantized matmuls (Q8_0 / Q4_0, Q4_K / Q6_K decode): int8 per 32-block with an fp32
// scale, the sums that remove unsigned weight codes' offsets, and the per-lane bias terms of the VNNI register tile.
#pragma once
#include <cstdint>

#include "parallel.h"

namespace sr {

/** x [k] → q [k] int8 and d [k/32]: d = max|x|/127 per block, q = round(x/d) half away from zero (ggml's reference
 *  Q8_0 rounding, the scale kept in fp32); k a multiple of 32. AVX-512 when present, the same bits as the scalar
 *  reference quantize_activations_scalar. */
void quantize_activations(const float* x, int64_t k, int8_t* q, float* d);
void quantize_activations_scalar(const float* x, int64_t k, int8_t* q, float* d);

/** bias[l] = −shift × (q[4l] + … + q[4l + 3]) for `lanes` int32 lanes: the accumulator that removes an unsigned
 *  operand's offset `shift` from a vpdpbusd against q (8 for Q4_0 nibbles, 128 for Q8_0 bytes with the sign flipped). */
void lane_bias(const int8_t* q, int64_t lanes, int32_t shift, int32_t* bias);

/** Up to 4 rows of QuantizedActivations: int8 values, per-32-block scales, per-16-value sums. */
struct ActivationRows {
  const int8_t* q[4];
  const float* d[4];
  const int32_t* sum16[4];
  int count;
};

/** x [n, k] (k a multiple of 32) quantized row by row as quantize_activations does, threads over rows, with the sum of
 *  every 16 consecutive int8 values (an unsigned weight code's offset times it is removed from each dot product).
 *  Throws std::bad_alloc. */
class QuantizedActivations {
 public:
  QuantizedActivations(const float* x, int64_t n, int64_t k);
  const int8_t* q(int64_t i) const { return q_.data() + i * k_; }
  const float* d(int64_t i) const { return d_.data() + i * (k_ / 32); }
  const int32_t* sum16(int64_t i) const { return sum16_.data() + i * (k_ / 16); }
  /** Rows [i0, i0 + count), count ≤ 4. */
  ActivationRows rows(int64_t i0, int count) const;

 private:
  int64_t k_;
  Buffer<int8_t> q_;
  Buffer<float> d_;
  Buffer<int32_t> sum16_;
};

}  // namespace sr
