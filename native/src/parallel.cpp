// Thread-count control for every kernel and the cached CPU feature bits used for dispatch.
#include "parallel.h"

#include <atomic>

#include "status.h"

namespace sr {
namespace {
std::atomic<int> g_threads{0};  // 0: not set, use the cores of the affinity mask
constexpr int kMaxThreads = 1024;
}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : available_cores();
}

std::atomic<uint32_t> g_isa_mask{~0u};

uint32_t cpu_features() {
  static const uint32_t features = [] {
    uint32_t f = 0;
    sr_cpu_features(&f, nullptr, 0);
    return f;
  }();
  return features & g_isa_mask.load(std::memory_order_relaxed);
}
}  // namespace sr

extern "C" SR_API sr_status sr_set_num_threads(int32_t threads) {
  if (threads < 0 || threads > sr::kMaxThreads)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_set_num_threads: thread count must be 0 (all cores) to " + std::to_string(sr::kMaxThreads) +
                                         ", got " + std::to_string(threads));
  sr::g_threads.store(threads, std::memory_order_relaxed);
  return SR_OK;
}

extern "C" SR_API sr_status sr_get_num_threads(int32_t* threads) {
  if (threads == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_get_num_threads: threads is null");
  *threads = sr::num_threads();
  return SR_OK;
}

extern "C" SR_API sr_status sr_set_max_isa(int32_t level) {
  uint32_t mask;
  switch (level) {
    case SR_ISA_SCALAR: mask = SR_CPU_SSE42; break;
    case SR_ISA_AVX2: mask = SR_CPU_SSE42 | SR_CPU_AVX2 | SR_CPU_FMA | SR_CPU_F16C | SR_CPU_AVXVNNI; break;
    case SR_ISA_AVX512: mask = ~0u; break;
    case SR_ISA_AVX512_NO_VBMI: mask = ~static_cast<uint32_t>(SR_CPU_AVX512VBMI); break;
    default: return sr::fail(SR_INVALID_ARGUMENT, "sr_set_max_isa: unknown level " + std::to_string(level));
  }
  sr::g_isa_mask.store(mask, std::memory_order_relaxed);
  return SR_OK;
}
