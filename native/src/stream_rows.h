// The forward loop of the matmuls with a weight in a storage type for few activation rows (decode): each weight row
// is streamed once against the activation rows, 4 at a time. Shared by quantized_matmul.cpp and bf16_matmul.cpp.
#pragma once
#include <algorithm>
#include <cstdint>

#include "parallel.h"

namespace sr {

/** Runs dot(j, i0, rows, out) — out[r] = y[i0 + r, j] for up to 4 activation rows — over every (weight row, x row)
 *  pair and stores y [n, m]: tasks of 32 weight rows (a panel that stays in L2 while every x row passes over it),
 *  one thread when the product is small. */
template <class Dot>
void stream_rows(int64_t n, int64_t m, int64_t k, float* y, Dot&& dot) {
  constexpr int64_t kRowsPerTask = 32;
  int64_t tasks = (m + kRowsPerTask - 1) / kRowsPerTask;
  int threads = static_cast<double>(n) * m * k < 1e5 ? 1 : num_threads();
  parallel_tasks(tasks, threads, [&](int64_t task, int) {
    int64_t j0 = task * kRowsPerTask, j1 = std::min(m, j0 + kRowsPerTask);
    for (int64_t i0 = 0; i0 < n; i0 += 4) {
      int rows = static_cast<int>(std::min<int64_t>(4, n - i0));
      for (int64_t j = j0; j < j1; ++j) {
        float out[4];
        dot(j, i0, rows, out);
        for (int r = 0; r < rows; ++r) y[(i0 + r) * m + j] = out[r];
      }
    }
  });
}

}  // namespace sr
