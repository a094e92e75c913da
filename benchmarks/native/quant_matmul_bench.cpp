#include "saferlhf.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <random>
#include <cstring>
#include <algorithm>
// sr_quantized_matmul_f32 at one shape, outside .NET: best time of `reps` calls, and the largest relative difference
// from a double-precision model of the product (activations rounded per 32-block as the kernels do, exact integer
// block dots) on a sample of outputs. Usage: quant_matmul_bench TYPE N M K [REPS] [THREADS], TYPE 0 = Q8_0, 1 = Q4_0,
// 7 = Q8_0 and 8 = Q4_0 with the rows interleaved by 16 (sr_interleave_rows_q).
// Built with -DSAFERLHF_BENCHMARKS=ON; used to choose the kernels' tile shapes and row thresholds.
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  if (argc < 5) { printf("usage: quant_matmul_bench TYPE N M K [REPS] [THREADS]\n"); return 2; }
  int type = std::atoi(argv[1]); int64_t n = atoll(argv[2]), m = atoll(argv[3]), k = atoll(argv[4]); int reps = argc > 5 ? atoi(argv[5]) : 5;
  int threads = argc > 6 ? atoi(argv[6]) : 2;
  sr_set_num_threads(threads);
  std::mt19937 g(1); std::normal_distribution<float> nd;
  std::vector<float> x(n * k), wf(m * k), y(n * m), yref(n * m);
  for (auto& v : x) v = nd(g);
  for (auto& v : wf) v = nd(g) * 0.02f;
  const int file_type = type == SR_Q8_0_X16 ? SR_Q8_0 : type == SR_Q4_0_X16 ? SR_Q4_0 : type;
  int32_t bb; sr_quant_block_bytes(file_type, &bb);
  std::vector<char> w(m * k / 32 * bb);
  sr_quantize_f32(file_type, wf.data(), w.data(), m * k);
  std::vector<float> wd(m * k); sr_dequantize_f32(file_type, w.data(), wd.data(), m * k);
  if (type != file_type) {
    std::vector<char> packed(w.size());
    if (sr_interleave_rows_q(type, w.data(), packed.data(), m, k) != SR_OK) { printf("interleave failed\n"); return 1; }
    w.swap(packed);
  }
  if (sr_quantized_matmul_f32(type, x.data(), w.data(), y.data(), n, m, k) != SR_OK) { printf("fail\n"); return 1; }
  // reference on a sample of rows
  double maxerr = 0;
  int64_t ns = std::min<int64_t>(n, 8), ms = std::min<int64_t>(m, 64);
  for (int64_t i = 0; i < ns; ++i) {
    std::vector<int8_t> q(k); std::vector<float> d(k / 32);
    for (int64_t b = 0; b < k / 32; ++b) { float a = 0; for (int j = 0; j < 32; ++j) a = std::max(a, std::fabs(x[i*k+b*32+j])); d[b] = a / 127; float id = d[b] ? 1 / d[b] : 0; for (int j = 0; j < 32; ++j) q[b*32+j] = (int8_t)std::round(x[i*k+b*32+j]*id); }
    for (int64_t j = 0; j < ms; ++j) {
      double s = 0;
      for (int64_t b = 0; b < k / 32; ++b) { double bs = 0; for (int e = 0; e < 32; ++e) bs += (double)q[b*32+e] * wd[j*k+b*32+e]; s += bs * d[b]; }
      maxerr = std::max(maxerr, std::fabs(s - y[i*m+j]) / (std::fabs(s) + 1e-3));
    }
  }
  double best = 1e9;
  for (int r = 0; r < reps; ++r) { double t0 = now(); sr_quantized_matmul_f32(type, x.data(), w.data(), y.data(), n, m, k); best = std::min(best, now() - t0); }
  printf("type %d %ldx%ldx%ld: %.3f ms  %.1f Gop/s  %.1f GB/s(w)  relerr %.2e\n", type, n, m, k, best*1e3, 2.0*n*m*k/best/1e9, (double)w.size()/best/1e9, maxerr);
}
