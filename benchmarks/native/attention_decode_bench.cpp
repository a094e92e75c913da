#include "saferlhf.h"
#include <chrono>
#include <cstdio>
#include <vector>
#include <cstdlib>
#include <cstring>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
// sr_attention_forward_f32 for one query (decode) over 12 layers' KV caches of S positions (H heads × D, default 12 × 64,
// the 110M shape), with a 64 MB sweep before each token so the caches come from memory, as they do after a token's
// weights have streamed. Usage: attention_decode_bench S [THREADS [H D]]; mean per layer over 50 tokens. Built with
// -DSAFERLHF_BENCHMARKS=ON.
int main(int argc, char** argv) {
  int S = atoi(argv[1]), H = argc > 3 ? atoi(argv[3]) : 12, D = argc > 4 ? atoi(argv[4]) : 64, threads = argc > 2 ? atoi(argv[2]) : 2, L = 12;
  sr_set_num_threads(threads);
  std::vector<float> q(H * D, 0.1f), o(H * D), lse(H);
  std::vector<std::vector<float>> k(L, std::vector<float>(S * H * D, 0.2f)), v(L, std::vector<float>(S * H * D, 0.3f));
  std::vector<char> sweep(64 << 20, 1);
  double total = 0; int reps = 50;
  for (int r = 0; r < reps; ++r) {
    for (size_t i = 0; i < sweep.size(); i += 64) sweep[i]++;
    double t0 = now();
    for (int l = 0; l < L; ++l)
      sr_attention_forward_f32(q.data(), k[l].data(), v[l].data(), nullptr, o.data(), lse.data(), 1, 1, S, H, H, D, 0, 0.125f);
    total += now() - t0;
  }
  printf("S %d threads %d: %.2f us per layer (cold)\n", S, threads, total / reps / L * 1e6);
}
