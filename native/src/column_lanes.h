// The register tiles of the column-lane quantized products (quant_gemm.cpp, kquant_gemm.cpp, kquant_x16.cpp): 16 weight
// rows in the 32-bit lanes of a register, up to 8 activation rows per tile.
#pragma once
#include <cstdint>
#include <type_traits>

#include "quant_activations.h"

namespace sr {

constexpr int kTileRows = 8;  // activation rows per register tile

/** The int8 values, per-32-block scales and 16-value sums of activation rows [i0, i0 + R). */
template <int R>
struct TileRows {
  const int8_t* q[R];
  const float* d[R];
  const int32_t* sum16[R];
  TileRows(const QuantizedActivations& x, int64_t i0) {
    for (int r = 0; r < R; ++r) {
      q[r] = x.q(i0 + r);
      d[r] = x.d(i0 + r);
      sum16[r] = x.sum16(i0 + r);
    }
  }
};

/** tile(std::integral_constant<int, R>, i0) over n activation rows: tiles of 8 rows, then one of the remainder (R a
 *  compile-time constant, so each tile size keeps its accumulators in registers). */
template <class Tile>
void for_each_tile(int64_t n, Tile&& tile) {
  int64_t i0 = 0;
  for (; i0 + kTileRows <= n; i0 += kTileRows) tile(std::integral_constant<int, kTileRows>{}, i0);
  switch (n - i0) {
    case 0: break;
    case 1: tile(std::integral_constant<int, 1>{}, i0); break;
    case 2: tile(std::integral_constant<int, 2>{}, i0); break;
    case 3: tile(std::integral_constant<int, 3>{}, i0); break;
    case 4: tile(std::integral_constant<int, 4>{}, i0); break;
    case 5: tile(std::integral_constant<int, 5>{}, i0); break;
    case 6: tile(std::integral_constant<int, 6>{}, i0); break;
    default: tile(std::integral_constant<int, 7>{}, i0); break;
  }
}

}  // namespace sr
