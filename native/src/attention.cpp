// Causal flash attention with grouped-query heads and a key padding mask, forward and backward.
// The forward walks key blocks with an online softmax (running max m and sum l per query), so no T×S
// score matrix is ever stored; block products go through the packed GEMM. The backward recomputes the
// probabilities from the saved log-sum-exp in two race-free passes: key blocks own dk/dv, query blocks own dq.
// One query per sequence (decode) skips the blocks: dot products and a two-pass softmax per head. The forward also
// reads BF16 keys and values (a BF16 KV cache), widening them to fp32 as it reads them.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "matmul.h"
#include "parallel.h"
#include "status.h"
#include "vmath.h"

namespace sr {
namespace {

constexpr int64_t BQ = 96;   // queries per block
constexpr int64_t BK = 128;  // keys per block
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Dims {
  int64_t B, T, S, H, Hkv, D;
  int64_t KvB = 0;  // element distance between batch rows of k / v (0: packed, S·Hkv·D)
  int64_t kv_batch() const { return KvB != 0 ? KvB : S * Hkv * D; }
  int64_t group() const { return H / Hkv; }
  int64_t q_row() const { return H * D; }     // element distance between consecutive t in q / o
  int64_t k_row() const { return Hkv * D; }   // element distance between consecutive s in k / v
  const float* q_at(const float* q, int64_t b, int64_t t, int64_t h) const { return q + ((b * T + t) * H + h) * D; }
  const float* k_at(const float* k, int64_t b, int64_t s, int64_t hk) const { return k + b * kv_batch() + (s * Hkv + hk) * D; }
  /** Last key position query t may see (causal, aligned at the end). */
  int64_t limit(int64_t t) const { return S - T + t; }
};

/** bf16 (the upper 16 bits of an fp32) → fp32, exactly. */
SR_CLONES void widen_bf16(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

/** Keys or values of the forward as stored: fp32, or BF16 (a BF16 KV cache), widened to fp32 where they are read. */
struct Kv {
  const void* data;
  bool bf16;
  int64_t at(const Dims& d, int64_t b, int64_t s, int64_t hk) const { return b * d.kv_batch() + (s * d.Hkv + hk) * d.D; }
  /** `count` consecutive elements from row s, kv head hk, as fp32: in place, or widened into buf. */
  const float* span(const Dims& d, int64_t b, int64_t s, int64_t hk, int64_t count, float* buf) const {
    if (!bf16) return static_cast<const float*>(data) + at(d, b, s, hk);
    widen_bf16(static_cast<const uint16_t*>(data) + at(d, b, s, hk), count, buf);
    return buf;
  }
  /** Rows [s0, s0 + n) of kv head hk, [n, D] with row stride *ld: in place (Hkv·D), or widened into buf (D). */
  const float* rows(const Dims& d, int64_t b, int64_t s0, int64_t n, int64_t hk, float* buf, int64_t* ld) const {
    *ld = bf16 ? d.D : d.k_row();
    if (!bf16) return static_cast<const float*>(data) + at(d, b, s0, hk);
    for (int64_t r = 0; r < n; ++r) widen_bf16(static_cast<const uint16_t*>(data) + at(d, b, s0 + r, hk), d.D, buf + r * d.D);
    return buf;
  }
  const char* bytes_at(const Dims& d, int64_t b, int64_t s, int64_t hk) const {
    return static_cast<const char*>(data) + at(d, b, s, hk) * (bf16 ? 2 : 4);
  }
};

/** Sets s[i, j] = −inf where key s0 + j is not visible to query t0 + i (causal or padding). */
void mask_scores(const Dims& d, float* s, int64_t bq, int64_t bk, int64_t t0, int64_t s0, const float* mask_row) {
  for (int64_t i = 0; i < bq; ++i) {
    float* row = s + i * bk;
    int64_t last = d.limit(t0 + i) - s0;  // keys j > last are in the future
    for (int64_t j = last + 1 < 0 ? 0 : last + 1; j < bk; ++j) row[j] = kNegInf;
    if (mask_row != nullptr)
      for (int64_t j = 0; j < bk; ++j)
        if (mask_row[s0 + j] == 0.0f) row[j] = kNegInf;
  }
}

/** Online-softmax update for one block: s [bq, bk] scores become probabilities relative to the new
 *  running max; o [bq, D] is rescaled by e^(m_old − m_new); m and l are updated. */
SR_CLONES void online_softmax_block(float* s, int64_t bq, int64_t bk, float* m, float* l, float* o, int64_t dim) {
  for (int64_t i = 0; i < bq; ++i) {
    float* row = s + i * bk;
    float mb = row_max(row, bk);
    float m_new = mb > m[i] ? mb : m[i];
    if (m_new == -std::numeric_limits<float>::infinity()) {  // nothing visible yet
      for (int64_t j = 0; j < bk; ++j) row[j] = 0.0f;
      continue;
    }
    float alpha = fast_exp(m[i] - m_new);
    float sum = 0.0f;
    float acc[16] = {};
    int64_t j = 0;
    for (; j + 16 <= bk; j += 16)
      for (int u = 0; u < 16; ++u) {
        float p = fast_exp(row[j + u] - m_new);
        row[j + u] = p;
        acc[u] += p;
      }
    for (int u = 0; u < 16; ++u) sum += acc[u];
    for (; j < bk; ++j) {
      float p = fast_exp(row[j] - m_new);
      row[j] = p;
      sum += p;
    }
    l[i] = l[i] * alpha + sum;
    m[i] = m_new;
    float* orow = o + i * dim;
    if (alpha != 1.0f)
      for (int64_t c = 0; c < dim; ++c) orow[c] *= alpha;
  }
}

/** p = e^(s − lse) for scores s [bq, bk] (−inf → 0; rows with lse = −inf → 0). */
SR_CLONES void probabilities(float* s, int64_t bq, int64_t bk, const float* lse, int64_t lse_stride) {
  for (int64_t i = 0; i < bq; ++i) {
    float* row = s + i * bk;
    float l = lse[i * lse_stride];
    if (l == -std::numeric_limits<float>::infinity()) {
      for (int64_t j = 0; j < bk; ++j) row[j] = 0.0f;
      continue;
    }
    for (int64_t j = 0; j < bk; ++j) row[j] = fast_exp(row[j] - l);
  }
}

/** ds = p ∘ (dp − delta_i) · scale, written over dp. */
SR_CLONES void score_grad(const float* p, float* dp, int64_t bq, int64_t bk, const float* delta, float scale) {
  for (int64_t i = 0; i < bq; ++i) {
    const float* pr = p + i * bk;
    float* dr = dp + i * bk;
    float di = delta[i];
    for (int64_t j = 0; j < bk; ++j) dr[j] = pr[j] * (dr[j] - di) * scale;
  }
}

SR_CLONES void finish_rows(float* o_block, const float* m, const float* l, int64_t bq, int64_t dim, float* o, int64_t o_stride,
                           float* lse, int64_t lse_stride) {
  for (int64_t i = 0; i < bq; ++i) {
    float* dst = o + i * o_stride;
    const float* src = o_block + i * dim;
    if (l[i] == 0.0f) {
      for (int64_t c = 0; c < dim; ++c) dst[c] = 0.0f;
      lse[i * lse_stride] = -std::numeric_limits<float>::infinity();
    } else {
      float inv = 1.0f / l[i];
      for (int64_t c = 0; c < dim; ++c) dst[c] = src[c] * inv;
      lse[i * lse_stride] = m[i] + std::log(l[i]);
    }
  }
}

int64_t blocks(int64_t n, int64_t b) { return (n + b - 1) / b; }

/** The decode step's attention for batch row b, every head, one query each (T = 1, every key visible but for the
 *  mask): scores by dot products, a two-pass softmax, the weighted sum of the value rows. Keys and values are walked
 *  position by position, a whole cache row at a time, so the cache streams from memory in order (the weights of a
 *  token evict it from the caches). s holds H·(S + 1) floats, row_buf one widened cache row (Hkv·D floats). */
SR_CLONES void attend_row(const Dims& d, const float* q, Kv k, Kv v, const float* mask_row, int64_t b, float scale, float* s,
                          float* row_buf, float* o, float* lse) {
  const int64_t S = d.S, H = d.H, row_floats = d.Hkv * d.D;
  // Each cache row is prefetched a few rows ahead (the hardware prefetcher alone left the loads waiting).
  auto prefetch_row = [&](const Kv& kv, int64_t j) {
    if (j >= S) return;
    const char* p = kv.bytes_at(d, b, j, 0);
    for (int64_t off = 0; off < row_floats * (kv.bf16 ? 2 : 4); off += 64) __builtin_prefetch(p + off);
  };
  constexpr int64_t kAhead = 4;
  for (int64_t j = 0; j < S; ++j) {
    prefetch_row(k, j + kAhead);
    const bool masked = mask_row != nullptr && mask_row[j] == 0.0f;
    const float* krow = masked ? nullptr : k.span(d, b, j, 0, row_floats, row_buf);
    for (int64_t h = 0; h < H; ++h)
      s[h * S + j] = masked ? kNegInf : scale * dot(d.q_at(q, b, 0, h), krow + h / d.group() * d.D, d.D);
  }
  float* inv = s + H * S;  // 1 / Σ p per head, divided out after the value pass
  for (int64_t h = 0; h < H; ++h) {
    float* row = s + h * S;
    float* orow = const_cast<float*>(d.q_at(o, b, 0, h));
    for (int64_t c = 0; c < d.D; ++c) orow[c] = 0.0f;
    const float m = S == 0 ? kNegInf : row_max(row, S);
    if (m == kNegInf) {  // no visible key: probabilities 0, o = 0, lse = −inf
      for (int64_t j = 0; j < S; ++j) row[j] = 0.0f;
      lse[b * H + h] = kNegInf;
      inv[h] = 0.0f;
      continue;
    }
    float l = 0.0f;
    for (int64_t j = 0; j < S; ++j) {
      row[j] = fast_exp(row[j] - m);
      l += row[j];
    }
    lse[b * H + h] = m + std::log(l);
    inv[h] = 1.0f / l;
  }
  for (int64_t j = 0; j < S; ++j) {
    prefetch_row(v, j + kAhead);
    const float* vrow = v.span(d, b, j, 0, row_floats, row_buf);
    for (int64_t h = 0; h < H; ++h) {
      const float p = s[h * S + j];
      if (p == 0.0f) continue;
      float* orow = const_cast<float*>(d.q_at(o, b, 0, h));
      const float* vr = vrow + h / d.group() * d.D;
      for (int64_t c = 0; c < d.D; ++c) orow[c] += p * vr[c];
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    float* orow = const_cast<float*>(d.q_at(o, b, 0, h));
    for (int64_t c = 0; c < d.D; ++c) orow[c] *= inv[h];
  }
}

/** The forward for one query position per sequence (decode): a task per batch row, all heads. Splitting the heads of
 *  one row between threads was measured slower: the cache streams from memory at decode (the token's weights evict it),
 *  and two threads reading halves of the same rows took up to twice as long as one reading them whole. */
void forward_decode(const Dims& d, const float* q, Kv k, Kv v, const float* mask, float* o, float* lse, float scale) {
  int threads = static_cast<double>(d.B) * d.H * d.S * d.D < 3e4 ? 1 : num_threads();
  if (threads > d.B) threads = static_cast<int>(d.B);
  const int64_t per_task = d.H * (d.S + 1) + d.Hkv * d.D;  // scores and inverse sums, a widened row
  Buffer<float> scratch(static_cast<size_t>(threads * per_task + 1));
  parallel_tasks(d.B, threads, [&](int64_t b, int thread) {
    float* mine = scratch.data() + thread * per_task;
    attend_row(d, q, k, v, mask == nullptr ? nullptr : mask + b * d.S, b, scale, mine, mine + d.H * (d.S + 1), o, lse);
  });
}

void forward(const Dims& d, const float* q, Kv k, Kv v, const float* mask, float* o, float* lse, float scale) {
  if (d.T == 1) return forward_decode(d, q, k, v, mask, o, lse, scale);
  int threads = num_threads();
  int64_t qblocks = blocks(d.T, BQ);
  int64_t tasks = d.B * d.H * qblocks;
  if (static_cast<double>(d.T) * d.S * d.D * d.H * d.B < 1e5) threads = 1;
  // per thread: scores [BQ, BK], o block [BQ, D], m [BQ], l [BQ]; BF16 keys and values: their widened blocks [BK, D]
  int64_t per_thread = BQ * BK + BQ * d.D + 2 * BQ + (k.bf16 ? 2 * BK * d.D : 0);
  Buffer<float> scratch(static_cast<size_t>(threads > tasks ? tasks : threads) * per_thread);
  parallel_tasks(tasks, threads, [&](int64_t task, int thread) {
    float* s = scratch.data() + thread * per_thread;
    float* ob = s + BQ * BK;
    float* m = ob + BQ * d.D;
    float* l = m + BQ;
    int64_t qb = task % qblocks, h = (task / qblocks) % d.H, b = task / (qblocks * d.H);
    int64_t hk = h / d.group();
    int64_t t0 = qb * BQ, bq = std::min<int64_t>(BQ, d.T - t0);
    for (int64_t i = 0; i < bq; ++i) { m[i] = kNegInf; l[i] = 0.0f; }
    for (int64_t i = 0; i < bq * d.D; ++i) ob[i] = 0.0f;
    int64_t key_end = std::min<int64_t>(d.S, d.limit(t0 + bq - 1) + 1);
    const float* mask_row = mask == nullptr ? nullptr : mask + b * d.S;
    for (int64_t s0 = 0; s0 < key_end; s0 += BK) {
      int64_t bk = std::min<int64_t>(BK, key_end - s0);
      int64_t kld, vld;
      const float* kb = k.rows(d, b, s0, bk, hk, l + BQ, &kld);
      matmul_f32(bq, bk, d.D, scale, d.q_at(q, b, t0, h), d.q_row(), false, kb, kld, true, 0.0f, s, bk, 1);
      mask_scores(d, s, bq, bk, t0, s0, mask_row);
      online_softmax_block(s, bq, bk, m, l, ob, d.D);
      const float* vb = v.rows(d, b, s0, bk, hk, l + BQ + BK * d.D, &vld);
      matmul_f32(bq, d.D, bk, 1.0f, s, bk, false, vb, vld, false, 1.0f, ob, d.D, 1);
    }
    finish_rows(ob, m, l, bq, d.D, const_cast<float*>(d.q_at(o, b, t0, h)), d.q_row(), lse + (b * d.H + h) * d.T + t0, 1);
  });
}

SR_CLONES void row_dots(const float* x, const float* y, int64_t rows, int64_t stride, int64_t dim, float* out) {
  for (int64_t r = 0; r < rows; ++r) out[r] = dot(x + r * stride, y + r * stride, dim);
}

/** delta [B, H, T] = Σ_c dO·O  (= Σ_s p_s · dO·v_s), per query row. */
void output_dots(const Dims& d, const float* d_out, const float* o, float* delta) {
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.H; ++h) {
      Buffer<float> tmp(static_cast<size_t>(d.T));
      row_dots(d.q_at(d_out, b, 0, h), d.q_at(o, b, 0, h), d.T, d.q_row(), d.D, tmp.data());
      for (int64_t t = 0; t < d.T; ++t) delta[(b * d.H + h) * d.T + t] = tmp[t];
    }
}

/** The inputs of one backward call and the per-thread scratch: s/p [BQ, BK] and dp/ds [BQ, BK] per thread. */
struct Backward {
  const Dims& d;
  const float *q, *k, *v, *mask, *lse, *d_out, *delta;
  float scale;
  int threads;
  float* scratch;
  static constexpr int64_t kPerThread = 2 * BQ * BK;

  /** Recomputes p (into s) and ds (into dp) for query block [t0, t0+bq) × key block [s0, s0+bk). */
  void recompute(int64_t b, int64_t h, int64_t t0, int64_t bq, int64_t s0, int64_t bk, float* s, float* dp) const {
    const int64_t hk = h / d.group();
    matmul_f32(bq, bk, d.D, scale, d.q_at(q, b, t0, h), d.q_row(), false, d.k_at(k, b, s0, hk), d.k_row(), true, 0.0f, s, bk, 1);
    mask_scores(d, s, bq, bk, t0, s0, mask == nullptr ? nullptr : mask + b * d.S);
    probabilities(s, bq, bk, lse + (b * d.H + h) * d.T + t0, 1);
    matmul_f32(bq, bk, d.D, 1.0f, d.q_at(d_out, b, t0, h), d.q_row(), false, d.k_at(v, b, s0, hk), d.k_row(), true, 0.0f, dp,
               bk, 1);
    score_grad(s, dp, bq, bk, delta + (b * d.H + h) * d.T + t0, scale);
  }

  /** dk, dv of key block [s0, s0+bk) of (b, hk) := 0, then += pᵀ·dO and dsᵀ·q over every query block of the group's
   *  heads that sees it; with dq, also dq += ds·k for those query blocks. */
  void key_block(int64_t b, int64_t hk, int64_t s0, float* dq, float* dk, float* dv, float* s, float* dp) const {
    const int64_t bk = std::min<int64_t>(BK, d.S - s0);
    float* dk_blk = const_cast<float*>(d.k_at(dk, b, s0, hk));
    float* dv_blk = const_cast<float*>(d.k_at(dv, b, s0, hk));
    for (int64_t j = 0; j < bk; ++j)
      for (int64_t c = 0; c < d.D; ++c) dk_blk[j * d.k_row() + c] = dv_blk[j * d.k_row() + c] = 0.0f;
    const int64_t t_first = std::max<int64_t>(0, s0 - (d.S - d.T));  // first query that can see key s0
    for (int64_t h = hk * d.group(); h < (hk + 1) * d.group(); ++h)
      for (int64_t t0 = t_first / BQ * BQ; t0 < d.T; t0 += BQ) {
        const int64_t bq = std::min<int64_t>(BQ, d.T - t0);
        recompute(b, h, t0, bq, s0, bk, s, dp);
        matmul_f32(bk, d.D, bq, 1.0f, s, bk, true, d.q_at(d_out, b, t0, h), d.q_row(), false, 1.0f, dv_blk, d.k_row(), 1);
        matmul_f32(bk, d.D, bq, 1.0f, dp, bk, true, d.q_at(q, b, t0, h), d.q_row(), false, 1.0f, dk_blk, d.k_row(), 1);
        if (dq != nullptr)
          matmul_f32(bq, d.D, bk, 1.0f, dp, bk, false, d.k_at(k, b, s0, hk), d.k_row(), false, 1.0f,
                     const_cast<float*>(d.q_at(dq, b, t0, h)), d.q_row(), 1);
      }
  }

  /** A task per (b, kv head) walks its key blocks and adds dV, dK and dQ from one recomputation per block pair (the
   *  task owns its heads' dq rows): 5 block products per pair. */
  void one_pass(float* dq, float* dk, float* dv) const {
    parallel_tasks(d.B * d.Hkv, threads, [&](int64_t task, int thread) {
      float* s = scratch + thread * kPerThread;
      const int64_t hk = task % d.Hkv, b = task / d.Hkv;
      for (int64_t h = hk * d.group(); h < (hk + 1) * d.group(); ++h)
        for (int64_t t = 0; t < d.T; ++t)
          for (int64_t c = 0; c < d.D; ++c) const_cast<float*>(d.q_at(dq, b, t, h))[c] = 0.0f;
      for (int64_t s0 = 0; s0 < d.S; s0 += BK) key_block(b, hk, s0, dq, dk, dv, s, s + BQ * BK);
    });
  }

  /** Parallel over key blocks (dk, dv), then over query blocks (dq = ds·k over the key blocks each sees): 7 block
   *  products per pair, for fewer (b, kv head) pairs than threads. */
  void two_passes(float* dq, float* dk, float* dv) const {
    const int64_t qblocks = blocks(d.T, BQ), kblocks = blocks(d.S, BK);
    parallel_tasks(d.B * d.Hkv * kblocks, threads, [&](int64_t task, int thread) {
      float* s = scratch + thread * kPerThread;
      const int64_t kb = task % kblocks, hk = (task / kblocks) % d.Hkv, b = task / (kblocks * d.Hkv);
      key_block(b, hk, kb * BK, nullptr, dk, dv, s, s + BQ * BK);
    });
    parallel_tasks(d.B * d.H * qblocks, threads, [&](int64_t task, int thread) {
      float* s = scratch + thread * kPerThread;
      float* dp = s + BQ * BK;
      const int64_t qb = task % qblocks, h = (task / qblocks) % d.H, b = task / (qblocks * d.H);
      const int64_t t0 = qb * BQ, bq = std::min<int64_t>(BQ, d.T - t0);
      float* dq_blk = const_cast<float*>(d.q_at(dq, b, t0, h));
      for (int64_t i = 0; i < bq; ++i)
        for (int64_t c = 0; c < d.D; ++c) dq_blk[i * d.q_row() + c] = 0.0f;
      const int64_t key_end = std::min<int64_t>(d.S, d.limit(t0 + bq - 1) + 1);
      for (int64_t s0 = 0; s0 < key_end; s0 += BK) {
        const int64_t bk = std::min<int64_t>(BK, key_end - s0);
        recompute(b, h, t0, bq, s0, bk, s, dp);
        matmul_f32(bq, d.D, bk, 1.0f, dp, bk, false, d.k_at(k, b, s0, h / d.group()), d.k_row(), false, 1.0f, dq_blk,
                   d.q_row(), 1);
      }
    });
  }
};

void backward(const Dims& d, const float* q, const float* k, const float* v, const float* mask, const float* o,
              const float* lse, const float* d_out, float* dq, float* dk, float* dv, float scale) {
  int threads = num_threads();
  if (static_cast<double>(d.T) * d.S * d.D * d.H * d.B < 1e5) threads = 1;
  Buffer<float> delta(static_cast<size_t>(d.B * d.H * d.T));
  output_dots(d, d_out, o, delta.data());
  Buffer<float> scratch(static_cast<size_t>(threads) * Backward::kPerThread);
  const Backward bw{d, q, k, v, mask, lse, d_out, delta.data(), scale, threads, scratch.data()};
  // One pass when every thread can own whole (b, kv head) pairs; otherwise two.
  if (d.B * d.Hkv >= threads) return bw.one_pass(dq, dk, dv);
  bw.two_passes(dq, dk, dv);
}

sr_status check(const char* name, int64_t B, int64_t T, int64_t S, int64_t H, int64_t Hkv, int64_t D) {
  if (B < 0 || T < 0 || S < 0 || H < 0 || Hkv < 0 || D < 0) return fail(SR_INVALID_ARGUMENT, std::string(name) + ": negative size");
  if (S < T)
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": key length " + std::to_string(S) + " < query length " + std::to_string(T));
  if (H > 0 && (Hkv == 0 || H % Hkv != 0))
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": heads " + std::to_string(H) + " not a multiple of kv heads " + std::to_string(Hkv));
  return SR_OK;
}

}  // namespace
}  // namespace sr

namespace sr {
namespace {

/** The checks and the call of both forward entry points. */
sr_status forward_entry(const char* name, const float* q, Kv k, Kv v, const float* key_mask, float* o, float* lse, int64_t batch,
                        int64_t t_len, int64_t s_len, int64_t heads, int64_t kv_heads, int64_t head_dim,
                        int64_t kv_batch_stride, float scale) {
  sr_status st = check(name, batch, t_len, s_len, heads, kv_heads, head_dim);
  if (st != SR_OK) return st;
  if (kv_batch_stride != 0 && kv_batch_stride < s_len * kv_heads * head_dim)
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": kv_batch_stride " + std::to_string(kv_batch_stride) +
                                         " is smaller than S·Hkv·D = " + std::to_string(s_len * kv_heads * head_dim));
  if (batch * t_len * heads == 0) return SR_OK;
  if (q == nullptr || o == nullptr || lse == nullptr || (s_len > 0 && head_dim > 0 && (k.data == nullptr || v.data == nullptr)))
    return fail(SR_INVALID_ARGUMENT, std::string(name) + ": null pointer");
  try {
    forward({batch, t_len, s_len, heads, kv_heads, head_dim, kv_batch_stride}, q, k, v, key_mask, o, lse, scale);
  } catch (const std::bad_alloc&) {
    return fail(SR_OUT_OF_MEMORY, std::string(name) + ": out of memory");
  }
  return SR_OK;
}

}  // namespace
}  // namespace sr

extern "C" SR_API sr_status sr_attention_forward_f32(const float* q, const float* k, const float* v, const float* key_mask,
                                                     float* o, float* lse, int64_t batch, int64_t t_len, int64_t s_len,
                                                     int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t kv_batch_stride,
                                                     float scale) {
  return sr::forward_entry("sr_attention_forward_f32", q, {k, false}, {v, false}, key_mask, o, lse, batch, t_len, s_len, heads,
                           kv_heads, head_dim, kv_batch_stride, scale);
}

extern "C" SR_API sr_status sr_attention_forward_f32_bf16kv(const float* q, const uint16_t* k, const uint16_t* v,
                                                            const float* key_mask, float* o, float* lse, int64_t batch,
                                                            int64_t t_len, int64_t s_len, int64_t heads, int64_t kv_heads,
                                                            int64_t head_dim, int64_t kv_batch_stride, float scale) {
  return sr::forward_entry("sr_attention_forward_f32_bf16kv", q, {k, true}, {v, true}, key_mask, o, lse, batch, t_len, s_len,
                           heads, kv_heads, head_dim, kv_batch_stride, scale);
}

extern "C" SR_API sr_status sr_attention_backward_f32(const float* q, const float* k, const float* v, const float* key_mask,
                                                      const float* o, const float* lse, const float* d_out, float* dq,
                                                      float* dk, float* dv, int64_t batch, int64_t t_len, int64_t s_len,
                                                      int64_t heads, int64_t kv_heads, int64_t head_dim, float scale) {
  sr_status st = sr::check("sr_attention_backward_f32", batch, t_len, s_len, heads, kv_heads, head_dim);
  if (st != SR_OK) return st;
  if (batch * heads * head_dim == 0 || (t_len == 0 && s_len == 0)) return SR_OK;
  if (q == nullptr || k == nullptr || v == nullptr || o == nullptr || lse == nullptr || d_out == nullptr || dq == nullptr ||
      dk == nullptr || dv == nullptr)
    if (t_len > 0) return sr::fail(SR_INVALID_ARGUMENT, "sr_attention_backward_f32: null pointer");
  try {
    sr::backward({batch, t_len, s_len, heads, kv_heads, head_dim}, q, k, v, key_mask, o, lse, d_out, dq, dk, dv, scale);
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_attention_backward_f32: out of memory");
  }
  return SR_OK;
}
