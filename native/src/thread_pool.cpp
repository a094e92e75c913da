// Teams of worker threads behind run_region. A team serves one caller at a time; callers take an idle team from
// a free list (or make one), so teams are created only as deep as the callers' concurrency and then reused.
// Teams live until the process exits (their workers sleep in the kernel when idle).
#include "thread_pool.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "spin_wait.h"

#if defined(__linux__)
#include <sched.h>
#endif

namespace sr {
namespace {

class Team;

/** What a thread knows about the region it is running in. */
struct RegionContext {
  Team* team;  // null for a region run on its caller alone
  int thread;
  int thread_count;
};

thread_local const RegionContext* t_region = nullptr;

/** Sets t_region for a scope. */
class RegionScope {
 public:
  explicit RegionScope(const RegionContext* context) : saved_(t_region) { t_region = context; }
  ~RegionScope() { t_region = saved_; }
  RegionScope(const RegionScope&) = delete;
  RegionScope& operator=(const RegionScope&) = delete;

 private:
  const RegionContext* saved_;
};

/** A counting barrier for the threads of one region; the generation word is what waiters sleep on. */
class Barrier {
 public:
  void arrive(int thread_count) {
    uint32_t generation = generation_.value.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == thread_count) {
      arrived_.store(0, std::memory_order_relaxed);  // nobody arrives again before the generation moves on
      generation_.value.fetch_add(1, std::memory_order_seq_cst);
      wake_all(generation_);
    } else {
      wait_for_change(generation_, generation);
    }
  }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  WaitWord generation_;
};

/** One worker's mailbox: the job counter it waits on and the state of its part in the current job. */
struct Mailbox {
  enum : int { kIdle = 0, kPosted = 1, kRunning = 2, kCalledOff = 3 };
  WaitWord jobs;
  std::atomic<int> state{kIdle};
};

class Team {
 public:
  /** Runs fn on `threads` threads of this team, the caller being thread 0. */
  void run(int threads, RegionFn fn, void* ctx, Sharing sharing) {
    threads = 1 + grow(threads - 1);
    fn_ = fn;
    ctx_ = ctx;
    thread_count_ = threads;
    error_ = nullptr;
    pending_.store(threads - 1, std::memory_order_relaxed);
    uint32_t done = done_.value.load(std::memory_order_relaxed);
    for (int w = 0; w < threads - 1; ++w) {  // publish the job: the state store releases the fields above
      Mailbox& mailbox = *mailboxes_[w];
      mailbox.state.store(Mailbox::kPosted, std::memory_order_release);
      mailbox.jobs.value.fetch_add(1, std::memory_order_seq_cst);
      wake_all(mailbox.jobs);
    }
    execute(0);
    if (sharing == Sharing::AnySubset) {
      for (int w = 0; w < threads - 1; ++w) {  // the work is done or under way: call off the workers not started
        int posted = Mailbox::kPosted;
        if (mailboxes_[w]->state.compare_exchange_strong(posted, Mailbox::kCalledOff, std::memory_order_acq_rel)) finish_one();
      }
    }
    while (pending_.load(std::memory_order_acquire) != 0) done = wait_for_change(done_, done);
    if (error_) std::rethrow_exception(error_);
  }

  void barrier() { barrier_.arrive(thread_count_); }

 private:
  /** Starts workers until there are at least `workers`; returns how many of them this job gets (fewer when the
   *  system refuses more threads: the region then runs on fewer, which every body allows for). */
  int grow(int workers) {
    try {
      while (static_cast<int>(threads_.size()) < workers) {
        int index = static_cast<int>(threads_.size());
        if (mailboxes_.size() == threads_.size()) mailboxes_.push_back(std::make_unique<Mailbox>());
        Mailbox* mailbox = mailboxes_.back().get();
        threads_.emplace_back([this, index, mailbox] { work(index + 1, mailbox); });
        threads_.back().detach();
      }
    } catch (const std::exception&) {  // std::system_error (no more threads) or std::bad_alloc
    }
    return std::min(workers, static_cast<int>(threads_.size()));
  }

  void work(int thread, Mailbox* mailbox) {
    uint32_t seen = 0;
    for (;;) {
      seen = wait_for_change(mailbox->jobs, seen);
      // Take the posted job unless the caller called it off (then the job and its fields are not ours to touch).
      int posted = Mailbox::kPosted;
      if (!mailbox->state.compare_exchange_strong(posted, Mailbox::kRunning, std::memory_order_acq_rel)) continue;
      execute(thread);
      mailbox->state.store(Mailbox::kIdle, std::memory_order_relaxed);
      finish_one();
    }
  }

  /** Counts one worker out of the current job; the last one wakes the caller. */
  void finish_one() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      done_.value.fetch_add(1, std::memory_order_seq_cst);
      wake_all(done_);
    }
  }

  void execute(int thread) {
    RegionContext context{this, thread, thread_count_};
    RegionScope scope(&context);
    try {
      fn_(ctx_, thread, thread_count_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  RegionFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int thread_count_ = 1;
  std::exception_ptr error_;
  std::mutex error_mutex_;
  alignas(64) std::atomic<int> pending_{0};
  WaitWord done_;
  Barrier barrier_;
};

std::mutex g_free_mutex;
std::vector<Team*> g_free_teams;  // idle teams; never freed (their workers outlive any caller)

Team* take_team() {
  std::lock_guard<std::mutex> lock(g_free_mutex);
  if (g_free_teams.empty()) return new Team();
  Team* team = g_free_teams.back();
  g_free_teams.pop_back();
  return team;
}

void return_team(Team* team) {
  std::lock_guard<std::mutex> lock(g_free_mutex);
  g_free_teams.push_back(team);
}

/** Returns a taken team to the free list on scope exit (also when the region throws). */
class TeamLease {
 public:
  TeamLease() : team_(take_team()) {}
  ~TeamLease() { return_team(team_); }
  TeamLease(const TeamLease&) = delete;
  TeamLease& operator=(const TeamLease&) = delete;
  Team* get() const { return team_; }

 private:
  Team* team_;
};

}  // namespace

void run_region(int threads, RegionFn fn, void* ctx, Sharing sharing) {
  if (threads <= 1 || t_region != nullptr) {
    RegionContext alone{nullptr, 0, 1};
    RegionScope scope(&alone);
    fn(ctx, 0, 1);
    return;
  }
  TeamLease lease;
  lease.get()->run(threads, fn, ctx, sharing);
}

void region_barrier() {
  const RegionContext* region = t_region;
  if (region != nullptr && region->team != nullptr && region->thread_count > 1) region->team->barrier();
}

int region_thread() {
  const RegionContext* region = t_region;
  return region == nullptr ? 0 : region->thread;
}

int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
#endif
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

}  // namespace sr
