// Bounded spinning, then a kernel sleep: the wait primitive under the thread pool and its barrier.
#include "spin_wait.h"

#include <chrono>
#include <climits>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <condition_variable>
#include <mutex>
#endif

namespace sr {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/** Spins until the value changes or the budget runs out; true when it changed (new value in *seen). */
bool spin(const WaitWord& word, uint32_t old, uint32_t* seen) {
  int64_t deadline = 0;
  for (int i = 0;; ++i) {
    uint32_t v = word.value.load(std::memory_order_acquire);
    if (v != old) {
      *seen = v;
      return true;
    }
    if ((i & 63) == 0) {  // read the clock now and then: a clock read costs ~20 ns
      int64_t t = now_ns();
      if (deadline == 0) deadline = t + kSpinNanoseconds;
      else if (t >= deadline) return false;
    }
    cpu_relax();
  }
}

#if defined(__linux__)
void sleep_while(WaitWord& word, uint32_t old) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word.value), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr, 0);
}
void wake_sleepers(WaitWord& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word.value), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}
#else
// One process-wide condition variable: the fallback is correct, not fast (wake-ups recheck their own word).
std::mutex g_mutex;
std::condition_variable g_cv;
void sleep_while(WaitWord& word, uint32_t old) {
  std::unique_lock<std::mutex> lock(g_mutex);
  g_cv.wait(lock, [&] { return word.value.load(std::memory_order_seq_cst) != old; });
}
void wake_sleepers(WaitWord&) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_cv.notify_all();
}
#endif

}  // namespace

uint32_t wait_for_change(WaitWord& word, uint32_t old) {
  uint32_t v;
  if (spin(word, old, &v)) return v;
  // Announce the sleep before the last check: a waker that changes the value and then sees no sleeper is
  // ordered before this check (both sides are sequentially consistent), so the change is seen here.
  word.sleepers.fetch_add(1, std::memory_order_seq_cst);
  while ((v = word.value.load(std::memory_order_seq_cst)) == old) sleep_while(word, old);
  word.sleepers.fetch_sub(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  return v;
}

void wake_all(WaitWord& word) {
  if (word.sleepers.load(std::memory_order_seq_cst) != 0) wake_sleepers(word);
}

}  // namespace sr
