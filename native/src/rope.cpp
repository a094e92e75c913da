// Rotary position embedding (both pair conventions) and its inverse, which is the backward.
#include <cmath>
#include <string>

#include "parallel.h"
#include "status.h"
#include "vmath.h"

namespace sr {
namespace {

// x, y [tokens, heads, head_dim]; cs [half] cosines then [half] sines for each token's position
SR_CLONES void rope_token(const float* x, float* y, const float* cosv, const float* sinv, int64_t heads,
                          int64_t head_dim, bool interleaved) {
  int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    const float* xr = x + h * head_dim;
    float* yr = y + h * head_dim;
    if (interleaved) {
      for (int64_t i = 0; i < half; ++i) {
        float x0 = xr[2 * i], x1 = xr[2 * i + 1];
        yr[2 * i] = x0 * cosv[i] - x1 * sinv[i];
        yr[2 * i + 1] = x0 * sinv[i] + x1 * cosv[i];
      }
    } else {
      for (int64_t i = 0; i < half; ++i) {
        float x0 = xr[i], x1 = xr[i + half];
        yr[i] = x0 * cosv[i] - x1 * sinv[i];
        yr[i + half] = x0 * sinv[i] + x1 * cosv[i];
      }
    }
  }
}

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_rope_f32(const float* x, const int32_t* positions, float* y, int64_t batch, int64_t seq,
                                        int64_t heads, int64_t head_dim, double theta, int32_t style, int32_t inverse) {
  if (batch < 0 || seq < 0 || heads < 0 || head_dim < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_rope_f32: negative size");
  if (head_dim % 2 != 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_rope_f32: head_dim must be even, got " + std::to_string(head_dim));
  if (style != SR_ROPE_INTERLEAVED && style != SR_ROPE_HALF)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_rope_f32: unknown style " + std::to_string(style));
  int64_t tokens = batch * seq;
  if (tokens == 0 || heads == 0 || head_dim == 0) return SR_OK;
  if (x == nullptr || positions == nullptr || y == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_rope_f32: null pointer");
  int64_t half = head_dim / 2;
  try {
    sr::Buffer<double> inv_freq(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    int threads = sr::num_threads();
    sr::Buffer<float> tables(static_cast<size_t>(threads) * 2 * half);
    int64_t row = heads * head_dim;
    sr::parallel_for(tokens, 3.0 * static_cast<double>(row), [&](int64_t b, int64_t e) {
      float* cosv = tables.data() + static_cast<int64_t>(sr::thread_index()) * 2 * half;
      float* sinv = cosv + half;
      for (int64_t t = b; t < e; ++t) {
        double p = positions[t];
        for (int64_t i = 0; i < half; ++i) {
          double angle = p * inv_freq[i];
          cosv[i] = static_cast<float>(std::cos(angle));
          sinv[i] = static_cast<float>(inverse ? -std::sin(angle) : std::sin(angle));
        }
        sr::rope_token(x + t * row, y + t * row, cosv, sinv, heads, head_dim, style == SR_ROPE_INTERLEAVED);
      }
    });
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_rope_f32: out of memory");
  }
  return SR_OK;
}
