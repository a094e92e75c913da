// Threading and small helpers shared by the kernels: the thread count set from C# (sr_set_num_threads),
// parallel-for over index ranges on the thread pool (thread_pool.h), and aligned scratch buffers.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "saferlhf.h"
#include "thread_pool.h"

namespace sr {

/** Threads the kernels use (set by sr_set_num_threads; by default the cores in the process's affinity mask). */
int num_threads();

/** Calls body(thread, thread_count) through the pool's type-erased entry point. */
template <class F>
void run_on_threads(int threads, F& body, Sharing sharing = Sharing::EveryThread) {
  run_region(threads, [](void* ctx, int t, int nt) { (*static_cast<F*>(ctx))(t, nt); }, &body, sharing);
}

/** Runs body(begin, end) over [0, n) split into contiguous chunks, one per thread, in parallel when the
 *  work (n · cost_per_item) is worth more threads. The split depends only on n and the thread count; threads take
 *  chunks from a shared counter, so a thread that is slow to start has its chunk run by one that is free. */
template <class F>
void parallel_for(int64_t n, double cost_per_item, F&& body) {
  if (n <= 0) return;
  int threads = num_threads();
  double work = static_cast<double>(n) * cost_per_item;
  if (work < 32768.0 || threads <= 1 || n == 1) {  // on the caller alone (thread_index() is 0 in body)
    auto whole = [&](int, int) { body(int64_t{0}, n); };
    run_on_threads(1, whole);
    return;
  }
  int useful = static_cast<int>(n < threads ? n : threads);
  std::atomic<int> next{0};
  auto chunks = [&](int, int) {
    for (int c = next.fetch_add(1, std::memory_order_relaxed); c < useful; c = next.fetch_add(1, std::memory_order_relaxed)) {
      int64_t begin = n * c / useful, end = n * (c + 1) / useful;
      if (begin < end) body(begin, end);
    }
  };
  run_on_threads(useful, chunks, Sharing::AnySubset);
}

/** Runs body(thread, thread_count) on every thread of one parallel region (thread_count is 1 when nested). */
template <class F>
void parallel_region(int threads, F&& body) {
  run_on_threads(threads, body);
}

/** Waits for every thread of the current parallel_region (a no-op outside one). */
inline void barrier() { region_barrier(); }

/** This thread's index in the current parallel region (0 outside one): for per-thread scratch. */
inline int thread_index() { return region_thread(); }

/** 64-byte aligned scratch memory from this thread's cache of freed blocks (scratch_cache.cpp) or the heap; release
 *  returns it to the releasing thread's cache (or frees it). Throws std::bad_alloc. */
void* scratch_acquire(size_t bytes, size_t* capacity);
void scratch_release(void* data, size_t capacity);

/** 64-byte aligned scratch buffer (RAII) for one kernel call, uninitialized; see scratch_acquire. */
template <class T>
class Buffer {
 public:
  explicit Buffer(size_t count) : count_(count) {
    size_t bytes = (count * sizeof(T) + 63) / 64 * 64;
    data_ = static_cast<T*>(scratch_acquire(bytes == 0 ? 64 : bytes, &capacity_));
  }
  ~Buffer() { scratch_release(data_, capacity_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  size_t size() const { return count_; }
  void zero() { std::memset(data_, 0, count_ * sizeof(T)); }

 private:
  T* data_;
  size_t count_;
  size_t capacity_ = 0;
};

/** CPU features (SR_CPU_* bits), probed once, masked by sr_set_max_isa. */
uint32_t cpu_features();
inline bool has_avx512() {
  uint32_t f = cpu_features();
  return (f & (SR_CPU_AVX512F | SR_CPU_AVX512BW | SR_CPU_AVX512VL)) == (SR_CPU_AVX512F | SR_CPU_AVX512BW | SR_CPU_AVX512VL);
}
inline bool has_avx2_fma() {
  uint32_t f = cpu_features();
  return (f & (SR_CPU_AVX2 | SR_CPU_FMA)) == (SR_CPU_AVX2 | SR_CPU_FMA);
}
/** AVX-512 with VNNI, AVX2, FMA and F16C: what the int8 dot-product kernels of the quantized matmuls need. */
inline bool has_avx512_vnni() {
  return has_avx512() && has_avx2_fma() && (cpu_features() & SR_CPU_AVX512VNNI) && (cpu_features() & SR_CPU_F16C);
}

/** IEEE half ↔ float, exact scalar conversions (no F16C needed). */
inline float half_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/** float → half with round-to-nearest-even (as System.Half and ggml's F16C path). */
inline uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7FFFFFFFu;
  if (absx >= 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u : 0u));
  if (absx >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to ≥ 65520 → inf
  if (absx < 0x38800000u) {  // result is subnormal or zero
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 rounds to 0
    uint32_t e = absx >> 23;
    uint32_t mant = (absx & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14 + (112 - e) ... produces the 10-bit subnormal mantissa
    uint32_t value = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (value & 1))) ++value;
    return static_cast<uint16_t>(sign | value);
  }
  uint32_t value = ((absx >> 13) - (112u << 10));
  uint32_t rem = absx & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (value & 1))) ++value;
  return static_cast<uint16_t>(sign | value);
}

}  // namespace sr

namespace sr {
/** Runs body(task, thread) for every task in [0, n) with dynamic scheduling (tasks of uneven cost): threads
 *  take the next task from a shared counter, so which thread runs a task varies but each task's work does not. */
template <class F>
void parallel_tasks(int64_t n, int threads, F&& body) {
  if (n <= 0) return;
  if (threads > n) threads = static_cast<int>(n);
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) body(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  auto take = [&](int t, int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed)) body(i, t);
  };
  run_on_threads(threads, take, Sharing::AnySubset);
}
}  // namespace sr
