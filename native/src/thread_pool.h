// The kernels' thread pool: runs one function on `threads` threads (the caller is thread 0), with a barrier
// between them. Workers spin a bounded time waiting for work and then sleep, as does every wait inside a region
// (see spin_wait.h), so an oversubscribed machine loses only the CPU it lacks. Each calling thread gets a team of
// its own (concurrent callers do not queue); a region started inside a region runs on its caller alone.
#pragma once
#include <cstdint>

namespace sr {

/** The body of a region: called as fn(ctx, thread, thread_count) once per thread of the region. */
using RegionFn = void (*)(void* ctx, int thread, int thread_count);

/** How the threads of a region share its work. */
enum class Sharing {
  /** Every thread index must run (bodies with barriers or a fixed split per thread). */
  EveryThread,
  /** Any subset of the threads finishes the work (bodies that take work items from a shared counter): once the
   *  caller's own call returns, workers that have not started yet are called off instead of waited for, so a
   *  worker that is descheduled or still waking up does not delay the result. */
  AnySubset,
};

/** Runs fn on `threads` threads (fewer only when nested in another region: then on the caller alone) and
 *  returns when all are done. An exception thrown by any thread is rethrown here (the first one). */
void run_region(int threads, RegionFn fn, void* ctx, Sharing sharing = Sharing::EveryThread);

/** Waits until every thread of the current region arrives; a no-op outside a region or in a one-thread one. */
void region_barrier();

/** This thread's index in its current region (0 outside one). */
int region_thread();

/** Cores this process may run on (its CPU affinity mask; at least 1). */
int available_cores();

}  // namespace sr
