// The per-thread cache behind Buffer (parallel.h): kernels allocate their scratch per call, and a block fresh from
// the operating system costs a page fault per 4 KiB touched, which on small prefill shapes takes as long as the
// arithmetic. Freed blocks are kept per thread (up to kSlots blocks and kMaxBytes in all, each block at most
// kMaxBytes) and handed out again to a request they are large enough for; anything else goes to the heap.
#include <cstdlib>
#include <new>

#include "parallel.h"

namespace sr {
namespace {

constexpr int kSlots = 4;
constexpr size_t kMaxBytes = size_t{64} << 20;

struct Block {
  void* data = nullptr;
  size_t bytes = 0;
};

struct Cache {
  Block blocks[kSlots];
  size_t total = 0;
  ~Cache() {
    for (Block& b : blocks) std::free(b.data);
  }
};

thread_local Cache t_cache;

}  // namespace

void* scratch_acquire(size_t bytes, size_t* capacity) {
  Cache& c = t_cache;
  int best = -1;  // the smallest cached block that fits
  for (int i = 0; i < kSlots; ++i)
    if (c.blocks[i].data != nullptr && c.blocks[i].bytes >= bytes && (best < 0 || c.blocks[i].bytes < c.blocks[best].bytes)) best = i;
  if (best >= 0) {
    void* p = c.blocks[best].data;
    *capacity = c.blocks[best].bytes;
    c.total -= c.blocks[best].bytes;
    c.blocks[best] = Block{};
    return p;
  }
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) throw std::bad_alloc();
  *capacity = bytes;
  return p;
}

void scratch_release(void* data, size_t capacity) {
  Cache& c = t_cache;
  if (capacity > kMaxBytes) return std::free(data);
  // Make room: drop the smallest cached blocks until this one fits the byte budget and a slot is free.
  for (;;) {
    int empty = -1, smallest = -1;
    for (int i = 0; i < kSlots; ++i) {
      if (c.blocks[i].data == nullptr) empty = i;
      else if (smallest < 0 || c.blocks[i].bytes < c.blocks[smallest].bytes) smallest = i;
    }
    if (empty >= 0 && c.total + capacity <= kMaxBytes) {
      c.blocks[empty] = Block{data, capacity};
      c.total += capacity;
      return;
    }
    if (smallest < 0 || c.blocks[smallest].bytes > capacity) return std::free(data);  // keep the larger blocks
    std::free(c.blocks[smallest].data);
    c.total -= c.blocks[smallest].bytes;
    c.blocks[smallest] = Block{};
  }
}

}  // namespace sr
