#include "saferlhf.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <random>
#include <algorithm>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
// sr_quantized_matmul_f32 for one activation row over the weight matrices of a decode token, each matrix distinct, so
// that they stream from memory: per layer 4 × (dim × dim), 2 × (hidden × dim), 1 × (dim × hidden). Best of 20 passes.
// Usage: quant_gemv_stream_bench TYPE THREADS [LAYERS DIM HIDDEN] (default 12 768 2048, the 110M shape; TYPE 0 =
// Q8_0, 1 = Q4_0, 2 / 3 / 4 = Q4_K / Q5_K / Q6_K, 7 and 8 = Q8_0 and Q4_0 with the rows interleaved by 16, 9 / 10 / 11
// the K-quants interleaved). K-quants cannot be quantized here: their super-blocks are random bytes with small fp16
// scales (the speed of a product does not depend on the values). Built with -DSAFERLHF_BENCHMARKS=ON.
int main(int argc, char** argv) {
  if (argc < 3) { printf("usage: quant_gemv_stream_bench TYPE THREADS [LAYERS DIM HIDDEN]\n"); return 2; }
  int type = atoi(argv[1]); int threads = atoi(argv[2]); int layers = argc > 3 ? atoi(argv[3]) : 12; int dim = argc > 4 ? atoi(argv[4]) : 768, hid = argc > 5 ? atoi(argv[5]) : 2048;
  sr_set_num_threads(threads);
  const int file_type = type == SR_Q8_0_X16 ? SR_Q8_0 : type == SR_Q4_0_X16 ? SR_Q4_0 : type >= SR_Q4_K_X16 ? type - SR_Q4_K_X16 + SR_Q4_K : type;
  const bool kquant = file_type == SR_Q4_K || file_type == SR_Q5_K || file_type == SR_Q6_K;
  const int per = kquant ? 256 : 32;
  int32_t bb; sr_quant_block_bytes(file_type, &bb);
  struct M { int m, k; std::vector<char> w; };
  std::vector<M> mats;
  std::mt19937 g(1); std::normal_distribution<float> nd;
  size_t total = 0;
  for (int l = 0; l < layers; ++l) {
    int shapes[7][2] = {{dim,dim},{dim,dim},{dim,dim},{dim,dim},{hid,dim},{hid,dim},{dim,hid}};
    for (auto& s : shapes) {
      M mm{s[0], s[1], std::vector<char>((size_t)s[0] * s[1] / per * bb)};
      if (kquant) {
        for (auto& b : mm.w) b = static_cast<char>(g());
        const uint16_t small = 0x1C00;  // fp16 2^-8: d (and dmin) of every super-block
        for (size_t o = 0; o < mm.w.size(); o += bb) {
          if (file_type == SR_Q6_K) std::memcpy(&mm.w[o + 208], &small, 2);
          else { std::memcpy(&mm.w[o], &small, 2); std::memcpy(&mm.w[o + 2], &small, 2); }
        }
      } else {
        std::vector<float> wf((size_t)s[0] * s[1]); for (auto& v : wf) v = nd(g) * 0.02f;
        sr_quantize_f32(file_type, wf.data(), mm.w.data(), (int64_t)s[0] * s[1]);
      }
      if (type != file_type) {
        std::vector<char> packed(mm.w.size());
        sr_interleave_rows_q(type, mm.w.data(), packed.data(), s[0], s[1]);
        mm.w.swap(packed);
      }
      total += mm.w.size(); mats.push_back(std::move(mm));
    }
  }
  std::vector<float> x(hid), y(hid); for (auto& v : x) v = nd(g);
  double best = 1e9;
  for (int r = 0; r < 20; ++r) {
    double t0 = now();
    for (auto& mm : mats) sr_quantized_matmul_f32(type, x.data(), mm.w.data(), y.data(), 1, mm.m, mm.k);
    best = std::min(best, now() - t0);
  }
  printf("type %d threads %d: %zu MB per pass, %.3f ms, %.1f GB/s\n", type, threads, total >> 20, best * 1e3, total / best / 1e9);
}
