// Sum of squares of an fp32 tensor, for the global gradient norm of clipping: each square is rounded to fp32
// (as an fp32 x·x), the sum is accumulated in double. Chunks of fixed size are summed in parallel and their partial
// sums added in chunk order, so the result does not depend on the thread count.
#include <immintrin.h>

#include <cstdint>
#include <algorithm>
#include <string>
#include <vector>

#include "parallel.h"
#include "status.h"

namespace sr {
namespace {

constexpr int64_t kChunk = 1 << 16;

/** Naive reference path. */
double sum_squares_scalar(const float* x, int64_t n) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    float sq = x[i] * x[i];
    total += static_cast<double>(sq);
  }
  return total;
}

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl")
double sum_squares_avx512(const float* x, int64_t n) {
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    lo = _mm512_add_pd(lo, _mm512_maskz_cvtps_pd(0xFF, _mm256_mul_ps(a, a)));
    hi = _mm512_add_pd(hi, _mm512_maskz_cvtps_pd(0xFF, _mm256_mul_ps(b, b)));
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, _mm512_add_pd(lo, hi));
  double total = 0.0;
  for (double lane : lanes) total += lane;
  return total + sum_squares_scalar(x + i, n - i);
}
#pragma GCC pop_options

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_sum_of_squares_f32(const float* x, int64_t n, double* out) {
  if (out == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_sum_of_squares_f32: out is null");
  if (n < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_sum_of_squares_f32: negative size " + std::to_string(n));
  *out = 0.0;
  if (n == 0) return SR_OK;
  if (x == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_sum_of_squares_f32: x is null");
  const bool wide = sr::has_avx512();
  int64_t chunks = (n + sr::kChunk - 1) / sr::kChunk;
  try {
    std::vector<double> partial(static_cast<size_t>(chunks));
    sr::parallel_tasks(chunks, chunks > 1 ? sr::num_threads() : 1, [&](int64_t c, int) {
      int64_t begin = c * sr::kChunk, count = std::min(sr::kChunk, n - begin);
      partial[static_cast<size_t>(c)] = wide ? sr::sum_squares_avx512(x + begin, count) : sr::sum_squares_scalar(x + begin, count);
    });
    double total = 0.0;
    for (double p : partial) total += p;
    *out = total;
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_sum_of_squares_f32: out of memory");
  }
  return SR_OK;
}
