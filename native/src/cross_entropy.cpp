// Fused log-softmax + negative log-likelihood per row, and its gradient.
#include <atomic>
#include <string>

#include "parallel.h"
#include "status.h"
#include "vmath.h"

namespace sr {
namespace {

SR_CLONES void cross_entropy_rows(const float* logits, const int32_t* targets, float* losses, float* lse, int64_t begin,
                                  int64_t end, int64_t vocab, int32_t ignore_index, std::atomic<int64_t>* bad_row) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = logits + r * vocab;
    float l = log_sum_exp(xr, vocab);
    lse[r] = l;
    int32_t t = targets[r];
    if (t == ignore_index) {
      losses[r] = 0.0f;
    } else if (t < 0 || t >= vocab) {
      losses[r] = 0.0f;
      int64_t none = -1;
      bad_row->compare_exchange_strong(none, r);
    } else {
      losses[r] = l - xr[t];
    }
  }
}

SR_CLONES void cross_entropy_backward_rows(const float* logits, const int32_t* targets, const float* lse, const float* d_losses,
                                           float* d_logits, int64_t begin, int64_t end, int64_t vocab, int32_t ignore_index) {
  for (int64_t r = begin; r < end; ++r) {
    const float* xr = logits + r * vocab;
    float* dr = d_logits + r * vocab;
    int32_t t = targets[r];
    if (t == ignore_index || t < 0 || t >= vocab) {
      for (int64_t i = 0; i < vocab; ++i) dr[i] = 0.0f;
      continue;
    }
    float g = d_losses[r], l = lse[r];
    for (int64_t i = 0; i < vocab; ++i) dr[i] = g * fast_exp(xr[i] - l);
    dr[t] -= g;
  }
}

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_cross_entropy_forward_f32(const float* logits, const int32_t* targets, float* losses,
                                                         float* lse, int64_t rows, int64_t vocab, int32_t ignore_index) {
  if (rows < 0 || vocab < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_cross_entropy_forward_f32: negative size");
  if (rows == 0) return SR_OK;
  if (logits == nullptr || targets == nullptr || losses == nullptr || lse == nullptr)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_cross_entropy_forward_f32: null pointer");
  std::atomic<int64_t> bad_row{-1};
  sr::parallel_for(rows, 6.0 * static_cast<double>(vocab), [&](int64_t b, int64_t e) {
    sr::cross_entropy_rows(logits, targets, losses, lse, b, e, vocab, ignore_index, &bad_row);
  });
  int64_t bad = bad_row.load();
  if (bad >= 0)
    return sr::fail(SR_INDEX_OUT_OF_RANGE, "sr_cross_entropy_forward_f32: target " + std::to_string(targets[bad]) +
                                             " out of range [0, " + std::to_string(vocab) + ") at row " + std::to_string(bad));
  return SR_OK;
}

extern "C" SR_API sr_status sr_cross_entropy_backward_f32(const float* logits, const int32_t* targets, const float* lse,
                                                          const float* d_losses, float* d_logits, int64_t rows,
                                                          int64_t vocab, int32_t ignore_index) {
  if (rows < 0 || vocab < 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_cross_entropy_backward_f32: negative size");
  if (rows == 0 || vocab == 0) return SR_OK;
  if (logits == nullptr || targets == nullptr || lse == nullptr || d_losses == nullptr || d_logits == nullptr)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_cross_entropy_backward_f32: null pointer");
  for (int64_t r = 0; r < rows; ++r)
    if (targets[r] != ignore_index && (targets[r] < 0 || targets[r] >= vocab))
      return sr::fail(SR_INDEX_OUT_OF_RANGE, "sr_cross_entropy_backward_f32: target " + std::to_string(targets[r]) +
                                               " out of range [0, " + std::to_string(vocab) + ") at row " + std::to_string(r));
  sr::parallel_for(rows, 6.0 * static_cast<double>(vocab), [&](int64_t b, int64_t e) {
    sr::cross_entropy_backward_rows(logits, targets, lse, d_losses, d_logits, b, e, vocab, ignore_index);
  });
  return SR_OK;
}
