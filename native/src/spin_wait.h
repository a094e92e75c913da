// Waiting on a 32-bit word without burning a core: spin for a bounded time (cheap hand-offs while every thread
// is running), then sleep in the kernel until the word changes (futex on Linux, a condition variable elsewhere),
// so a thread whose partner was descheduled gives its CPU back instead of spinning through its time slice.
#pragma once
#include <atomic>
#include <cstdint>

namespace sr {

/** A word threads wait on, with a count of sleepers so wake-ups cost a system call only when someone sleeps. */
struct alignas(64) WaitWord {
  std::atomic<uint32_t> value{0};
  std::atomic<uint32_t> sleepers{0};
};

/** Spin budget before sleeping, in nanoseconds. */
constexpr int64_t kSpinNanoseconds = 50000;

/** Returns once word.value differs from `old` (returns the new value): spins for at most kSpinNanoseconds,
 *  then sleeps until wake_all. Acquire ordering on the value read. */
uint32_t wait_for_change(WaitWord& word, uint32_t old);

/** Wakes every sleeper of `word`; call after changing word.value (the change must be sequentially consistent). */
void wake_all(WaitWord& word);

/** A pause for spin loops. */
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace sr
