// dx = dy · w for a frozen weight stored in a compressed layout (quantized blocks, bf16): panels of the weight are
// decoded to fp32 and multiplied with the fp32 GEMM. Shared by the quantized and the BF16 linear backward.
#pragma once
#include <algorithm>
#include <cstdint>

#include "matmul.h"
#include "parallel.h"

namespace sr {

/** dx [n, k] = Σ over panels (rows j0.., columns c0..) of dy[:, j0:j0+rows] · panel, where
 *  decode_row(j, c0, cols, out) writes fp32 w[j, c0:c0+cols] to out. Panels are at most 512 rows × 1024 columns
 *  (columns stay a multiple of 32 except the last). Throws std::bad_alloc when the panel cannot be allocated. */
template <class DecodeRow>
void backward_by_panels(const float* dy, float* dx, int64_t n, int64_t m, int64_t k, DecodeRow&& decode_row) {
  constexpr int64_t kRows = 512, kCols = 1024;
  Buffer<float> panel(static_cast<size_t>(std::min(m, kRows) * std::min(k, kCols)));
  for (int64_t c0 = 0; c0 < k; c0 += kCols) {
    int64_t cols = std::min(kCols, k - c0);
    for (int64_t j0 = 0; j0 < m; j0 += kRows) {
      int64_t rows = std::min(kRows, m - j0);
      parallel_for(rows, static_cast<double>(cols), [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; ++j) decode_row(j0 + j, c0, cols, panel.data() + j * cols);
      });
      matmul_f32(n, cols, rows, 1.0f, dy + j0, m, false, panel.data(), cols, false, j0 == 0 ? 0.0f : 1.0f, dx + c0, k);
    }
  }
}

}  // namespace sr
