// fp32 GEMM: c = alpha · op(a) · op(b) + beta · c, batched, every transpose combination.
// Blocked as in BLIS/GotoBLAS: for each NC-wide column block and KC-deep slice, op(b) is packed into
// NR-wide panels shared by all threads; each thread packs its MC-row blocks of op(a) into MR-high
// panels and runs a register-tiled micro-kernel (AVX-512 12×32, AVX2 6×16, scalar 4×4) over them. Operands stored
// across the panels (op(a) = a, op(b) = bᵀ) are packed by 16×16 register transposes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "matmul.h"
#include "parallel.h"
#include "status.h"
#include "vmath.h"

namespace sr {
namespace {

#ifndef SR_GEMM_KC
#define SR_GEMM_KC 512
#endif
#ifndef SR_GEMM_MC
#define SR_GEMM_MC 192
#endif
constexpr int64_t KC = SR_GEMM_KC;  // depth of one packed slice
constexpr int64_t MC = SR_GEMM_MC;  // rows of op(a) packed per block (a multiple of every MR)
constexpr int64_t NC = 3072;  // columns of op(b) packed per block (a multiple of every NR)

/** Computes the MR×NR tile c (+)= alpha · pa · pb over kc steps (pa: kc×MR panel, pb: kc×NR panel). */
using MicroKernel = void (*)(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha, bool accumulate);

struct KernelInfo {
  int mr, nr;
  MicroKernel kernel;
};

// ---------------- micro-kernels ----------------

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,fma")
void kernel_avx512_12x32(int64_t kc, const float* pa, const float* pb,
                                                                           float* c, int64_t ldc, float alpha, bool accumulate) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00,
         c90 = c00, c91 = c00, ca0 = c00, ca1 = c00, cb0 = c00, cb1 = c00;
  for (int64_t p = 0; p < kc; ++p) {
    __m512 b0 = _mm512_load_ps(pb), b1 = _mm512_load_ps(pb + 16);
    __m512 a;
#define SR_ROW(r, x0, x1)              \
  a = _mm512_set1_ps(pa[r]);           \
  x0 = _mm512_fmadd_ps(a, b0, x0);     \
  x1 = _mm512_fmadd_ps(a, b1, x1);
    SR_ROW(0, c00, c01) SR_ROW(1, c10, c11) SR_ROW(2, c20, c21) SR_ROW(3, c30, c31)
    SR_ROW(4, c40, c41) SR_ROW(5, c50, c51) SR_ROW(6, c60, c61) SR_ROW(7, c70, c71)
    SR_ROW(8, c80, c81) SR_ROW(9, c90, c91) SR_ROW(10, ca0, ca1) SR_ROW(11, cb0, cb1)
#undef SR_ROW
    pa += 12;
    pb += 32;
  }
  __m512 va = _mm512_set1_ps(alpha);
  auto out = [&](int r, __m512 x0, __m512 x1) {
    float* row = c + r * ldc;
    if (accumulate) {
      _mm512_storeu_ps(row, _mm512_fmadd_ps(va, x0, _mm512_loadu_ps(row)));
      _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(va, x1, _mm512_loadu_ps(row + 16)));
    } else {
      _mm512_storeu_ps(row, _mm512_mul_ps(va, x0));
      _mm512_storeu_ps(row + 16, _mm512_mul_ps(va, x1));
    }
  };
  out(0, c00, c01); out(1, c10, c11); out(2, c20, c21); out(3, c30, c31);
  out(4, c40, c41); out(5, c50, c51); out(6, c60, c61); out(7, c70, c71);
  out(8, c80, c81); out(9, c90, c91); out(10, ca0, ca1); out(11, cb0, cb1);
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
void kernel_avx2_6x16(int64_t kc, const float* pa, const float* pb, float* c,
                                                          int64_t ldc, float alpha, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t p = 0; p < kc; ++p) {
    __m256 b0 = _mm256_load_ps(pb), b1 = _mm256_load_ps(pb + 8);
    __m256 a;
#define SR_ROW(r, x0, x1)              \
  a = _mm256_broadcast_ss(pa + r);     \
  x0 = _mm256_fmadd_ps(a, b0, x0);     \
  x1 = _mm256_fmadd_ps(a, b1, x1);
    SR_ROW(0, c00, c01) SR_ROW(1, c10, c11) SR_ROW(2, c20, c21)
    SR_ROW(3, c30, c31) SR_ROW(4, c40, c41) SR_ROW(5, c50, c51)
#undef SR_ROW
    pa += 6;
    pb += 16;
  }
  __m256 va = _mm256_set1_ps(alpha);
  auto out = [&](int r, __m256 x0, __m256 x1) {
    float* row = c + r * ldc;
    if (accumulate) {
      _mm256_storeu_ps(row, _mm256_fmadd_ps(va, x0, _mm256_loadu_ps(row)));
      _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(va, x1, _mm256_loadu_ps(row + 8)));
    } else {
      _mm256_storeu_ps(row, _mm256_mul_ps(va, x0));
      _mm256_storeu_ps(row + 8, _mm256_mul_ps(va, x1));
    }
  };
  out(0, c00, c01); out(1, c10, c11); out(2, c20, c21);
  out(3, c30, c31); out(4, c40, c41); out(5, c50, c51);
}

#pragma GCC pop_options

void kernel_scalar_4x4(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha, bool accumulate) {
  float acc[4][4] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < 4; ++r)
      for (int j = 0; j < 4; ++j) acc[r][j] += pa[r] * pb[j];
    pa += 4;
    pb += 4;
  }
  for (int r = 0; r < 4; ++r)
    for (int j = 0; j < 4; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + alpha * acc[r][j] : alpha * acc[r][j];
}

KernelInfo select_kernel() {
  if (has_avx512()) return {12, 32, kernel_avx512_12x32};
  if (has_avx2_fma()) return {6, 16, kernel_avx2_6x16};
  return {4, 4, kernel_scalar_4x4};
}

// ---------------- packing ----------------

struct Operand {
  const float* data;
  int64_t ld;
  bool trans;
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq")
// GCC 12 reports the undefined pass-through operand inside its own unmasked AVX-512 intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
/** dst[p·ldd + r] = src[r·ld + p] for p < 16 and r < rows ≤ 16: a 16×16 block transposed in registers (unpacks, then
 *  128-bit lane shuffles); the output rows are `rows` floats wide. */
void transpose16_avx512(const float* src, int64_t ld, int rows, float* dst, int64_t ldd) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(src + i * ld) : _mm512_setzero_ps();
  __m512 u[16];  // u[4g + j], lane L: column 4L + j of rows 4g .. 4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512 t0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]), t1 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
    const __m512 t2 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]), t3 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  }
  const __mmask16 width = static_cast<__mmask16>((1u << rows) - 1);
  for (int j = 0; j < 4; ++j) {
    const __m512 a0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), a1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    const __m512 b0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44), b1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    _mm512_mask_storeu_ps(dst + (0 + j) * ldd, width, _mm512_shuffle_f32x4(a0, b0, 0x88));
    _mm512_mask_storeu_ps(dst + (4 + j) * ldd, width, _mm512_shuffle_f32x4(a0, b0, 0xDD));
    _mm512_mask_storeu_ps(dst + (8 + j) * ldd, width, _mm512_shuffle_f32x4(a1, b1, 0x88));
    _mm512_mask_storeu_ps(dst + (12 + j) * ldd, width, _mm512_shuffle_f32x4(a1, b1, 0xDD));
  }
}
#pragma GCC diagnostic pop
#pragma GCC pop_options

/** dst[p·ldd + r] = src[r·ld + p] for p < depth and r < rows ≤ 16 (a transposing copy, the packing of operands stored
 *  across the panel): 16×16 register blocks where AVX-512 is present, the scalar loop otherwise and for the tail. */
void transpose_rows(const float* src, int64_t ld, int rows, int64_t depth, float* dst, int64_t ldd) {
  int64_t p = 0;
  if (has_avx512())
    for (; p + 16 <= depth; p += 16) transpose16_avx512(src + p, ld, rows, dst + p * ldd, ldd);
  for (int r = 0; r < rows; ++r)
    for (int64_t q = p; q < depth; ++q) dst[q * ldd + r] = src[r * ld + q];
}

/** Packs rows [i0, i0+mc) × depth [p0, p0+kc) of op(a) into MR-high panels, zero-padding the last. */
void pack_a(const Operand& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, float* dst) {
  for (int64_t ib = 0; ib < mc; ib += mr) {
    int64_t rows = std::min<int64_t>(mr, mc - ib);
    if (!a.trans && mr <= 16) {  // op(a)(i, p) = a[i, p]: each row of the panel is a column of a
      transpose_rows(a.data + (i0 + ib) * a.ld + p0, a.ld, static_cast<int>(rows), kc, dst, mr);
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t r = rows; r < mr; ++r) dst[p * mr + r] = 0.0f;
    } else if (a.trans && rows == 12 && mr == 12) {  // full panels of the AVX-512 kernel: fixed-size row copies
      for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * mr, a.data + (p0 + p) * a.ld + i0 + ib, 12 * sizeof(float));
    } else if (a.trans) {  // op(a)(i, p) = a[p, i]: rows of a are contiguous in i
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a.data + (p0 + p) * a.ld + i0 + ib;
        float* d = dst + p * mr;
        int64_t r = 0;
        for (; r < rows; ++r) d[r] = src[r];
        for (; r < mr; ++r) d[r] = 0.0f;
      }
    } else {
      for (int64_t r = 0; r < mr; ++r) {
        if (r < rows) {
          const float* src = a.data + (i0 + ib + r) * a.ld + p0;
          for (int64_t p = 0; p < kc; ++p) dst[p * mr + r] = src[p];
        } else {
          for (int64_t p = 0; p < kc; ++p) dst[p * mr + r] = 0.0f;
        }
      }
    }
    dst += kc * mr;
  }
}

/** Packs depth [p0, p0+kc) × one NR-wide panel starting at column j of op(b), zero-padding past n. */
void pack_b_panel(const Operand& b, int64_t p0, int64_t kc, int64_t j, int64_t cols, int nr, float* dst) {
  if (!b.trans && cols == nr && (nr == 32 || nr == 16)) {  // full panels: fixed-size row copies (inlined, no call)
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b.data + (p0 + p) * b.ld + j;
      if (nr == 32) std::memcpy(dst + p * nr, src, 32 * sizeof(float));
      else std::memcpy(dst + p * nr, src, 16 * sizeof(float));
    }
  } else if (!b.trans) {  // op(b)(p, j) = b[p, j]: contiguous in j
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = b.data + (p0 + p) * b.ld + j;
      float* d = dst + p * nr;
      int64_t c = 0;
      for (; c < cols; ++c) d[c] = src[c];
      for (; c < nr; ++c) d[c] = 0.0f;
    }
  } else if (cols == nr && nr % 16 == 0) {  // op(b)(p, j) = b[j, p]: 16 columns at a time, transposed
    for (int64_t c = 0; c < nr; c += 16) transpose_rows(b.data + (j + c) * b.ld + p0, b.ld, 16, kc, dst + c, nr);
  } else {
    for (int64_t c = 0; c < nr; ++c) {
      if (c < cols) {
        const float* src = b.data + (j + c) * b.ld + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * nr + c] = src[p];
      } else {
        for (int64_t p = 0; p < kc; ++p) dst[p * nr + c] = 0.0f;
      }
    }
  }
}

/** c (m×n) *= beta (beta = 0 writes zeros so NaNs in c do not survive). */
void scale_c(float* c, int64_t ldc, int64_t m, int64_t n, float beta) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) std::fill(row, row + n, 0.0f);
    else for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}

/** Runs the micro-kernel on one tile, through a scratch tile where it sticks out of c. */
inline void run_tile(const KernelInfo& ki, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc,
                     int64_t rows, int64_t cols, float alpha, bool accumulate, float* scratch) {
  if (rows == ki.mr && cols == ki.nr) {
    ki.kernel(kc, pa, pb, c, ldc, alpha, accumulate);
    return;
  }
  ki.kernel(kc, pa, pb, scratch, ki.nr, 1.0f, false);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float v = alpha * scratch[r * ki.nr + j];
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + v : v;
    }
}

// ---------------- matrix-vector (m = 1): bound by reading op(b) once, no packing ----------------

// c[j] = alpha · x·b_j + beta · c[j] for rows b_j of a row-major n×k matrix (op(b) = bᵀ)
SR_CLONES void gemv_rows(const float* x, const float* b, int64_t ldb, int64_t k, int64_t begin, int64_t end, float alpha,
                         float beta, float* c) {
  for (int64_t j = begin; j < end; ++j) {
    float v = alpha * dot(x, b + j * ldb, k);
    c[j] = beta == 0.0f ? v : v + beta * c[j];
  }
}

// c[j0:j1] = alpha · Σ_p x[p] · b[p, j0:j1] + beta · c[j0:j1] (op(b) = b, k×n row-major)
SR_CLONES void gemv_cols(const float* x, const float* b, int64_t ldb, int64_t k, int64_t begin, int64_t end, float alpha,
                         float beta, float* c, float* acc) {
  int64_t w = end - begin;
  for (int64_t j = 0; j < w; ++j) acc[j] = 0.0f;
  for (int64_t p = 0; p < k; ++p) {
    float xp = x[p];
    const float* row = b + p * ldb + begin;
    for (int64_t j = 0; j < w; ++j) acc[j] += xp * row[j];
  }
  for (int64_t j = 0; j < w; ++j) c[begin + j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * c[begin + j];
}

void gemv(int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a, const float* b, int64_t ldb,
          bool trans_b, float beta, float* c, int threads) {
  Buffer<float> x(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) x[p] = trans_a ? a[p * lda] : a[p];
  double cost = static_cast<double>(k) * 2.0;
  if (threads == 1) cost = 0.0;  // parallel_for then stays on this thread
  if (trans_b) {
    parallel_for(n, cost, [&](int64_t b0, int64_t e0) { gemv_rows(x.data(), b, ldb, k, b0, e0, alpha, beta, c); });
  } else {
    constexpr int64_t kChunk = 512;
    int64_t chunks = (n + kChunk - 1) / kChunk;
    parallel_for(chunks, cost * kChunk, [&](int64_t b0, int64_t e0) {
      alignas(64) float acc[kChunk];
      for (int64_t ch = b0; ch < e0; ++ch)
        gemv_cols(x.data(), b, ldb, k, ch * kChunk, std::min(n, (ch + 1) * kChunk), alpha, beta, c, acc);
    });
  }
}

/** How the threads share a GEMM: the thread count (one for small products, never more than the tiles to split) and
 *  whether they split the rows (when there are enough of them) or the columns. */
struct ThreadPlan {
  int threads;
  bool split_rows;
};

ThreadPlan plan_threads(int64_t m, int64_t n, int64_t k, int mr, int nr, int threads) {
  if (threads <= 0) threads = num_threads();
  double flops = 2.0 * static_cast<double>(m) * n * k;
  if (flops < 4.0e6) threads = 1;
  int64_t row_tiles = (m + mr - 1) / mr, col_tiles = (n + nr - 1) / nr;
  const bool split_rows = !(row_tiles < 4 * threads && col_tiles > row_tiles);
  threads = static_cast<int>(std::min<int64_t>(threads, split_rows ? row_tiles : col_tiles));
  if (threads < 1) threads = 1;
  return {threads, split_rows};
}

/** One blocked GEMM shared by the threads of a parallel region: operands, plan and packing buffers. */
struct GemmJob {
  KernelInfo ki;
  Operand A, B;
  int64_t m, n, k;
  float alpha;
  bool overwrite_first, split_rows;
  int64_t row_tiles, kc_max;
  float* packed_b;
  float* packed_a_all;
  float* c;
  int64_t ldc;

  /** Thread t of nt: packs its share of each B panel block, then multiplies its rows (or columns) of C. */
  void run(int t, int nt) const {
    const int mr = ki.mr, nr = ki.nr;
    const int tm = split_rows ? nt : 1, tn = split_rows ? 1 : nt;
    const int tid_m = split_rows ? t : 0, tid_n = split_rows ? 0 : t;
    float* packed_a = packed_a_all + static_cast<int64_t>(t) * MC * kc_max;
    // This thread's rows: whole MR tiles split evenly.
    int64_t r_begin = row_tiles * tid_m / tm * mr, r_end = std::min<int64_t>(m, row_tiles * (tid_m + 1) / tm * mr);
    alignas(64) float scratch[16 * 32];
    for (int64_t jc = 0; jc < n; jc += NC) {
      int64_t nc = std::min<int64_t>(NC, n - jc);
      int64_t panels = (nc + nr - 1) / nr;
      int64_t p_begin = panels * tid_n / tn, p_end = panels * (tid_n + 1) / tn;
      for (int64_t pc = 0; pc < k; pc += KC) {
        int64_t kc = std::min<int64_t>(KC, k - pc);
        bool accumulate = pc > 0 || !overwrite_first;
        if (nt > 1) barrier();  // everyone is done with the previous packed_b
        for (int64_t jp = t; jp < panels; jp += nt) {
          int64_t j = jc + jp * nr;
          pack_b_panel(B, pc, kc, j, std::min<int64_t>(nr, n - j), nr, packed_b + jp * kc * nr);
        }
        if (nt > 1) barrier();
        for (int64_t ic = r_begin; ic < r_end; ic += MC) {
          int64_t mc = std::min<int64_t>(MC, r_end - ic);
          pack_a(A, ic, mc, pc, kc, mr, packed_a);
          for (int64_t jp = p_begin; jp < p_end; ++jp) {
            int64_t j = jc + jp * nr, cols = std::min<int64_t>(nr, n - j);
            const float* pb = packed_b + jp * kc * nr;
            for (int64_t ib = 0; ib < mc; ib += mr) {
              int64_t rows = std::min<int64_t>(mr, mc - ib);
              run_tile(ki, kc, packed_a + ib * kc, pb, c + (ic + ib) * ldc + j, ldc, rows, cols, alpha,
                       accumulate, scratch);
            }
          }
        }
      }
    }
  }
};

}  // namespace

void matmul_f32(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, bool trans_a, const float* b,
              int64_t ldb, bool trans_b, float beta, float* c, int64_t ldc, int threads) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    if (beta != 1.0f) scale_c(c, ldc, m, n, beta);
    return;
  }
  if (m == 1 && beta != 0.0f && beta != 1.0f) {
    scale_c(c, ldc, m, n, beta);
    beta = 1.0f;
  }
  if (m == 1) {
    gemv(n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c, threads);
    return;
  }
  const KernelInfo ki = select_kernel();
  const int mr = ki.mr, nr = ki.nr;
  const ThreadPlan plan = plan_threads(m, n, k, mr, nr, threads);
  threads = plan.threads;
  const bool split_rows = plan.split_rows;
  const int64_t row_tiles = (m + mr - 1) / mr;

  bool scale_first = beta != 0.0f && beta != 1.0f;
  if (scale_first) scale_c(c, ldc, m, n, beta);
  const bool overwrite_first = beta == 0.0f;

  const Operand A{a, lda, trans_a}, B{b, ldb, trans_b};
  const int64_t nc_max = std::min<int64_t>(NC, (n + nr - 1) / nr * nr);
  const int64_t kc_max = std::min<int64_t>(KC, k);
  Buffer<float> packed_b(static_cast<size_t>(nc_max * kc_max));
  Buffer<float> packed_a_all(static_cast<size_t>(threads * MC * kc_max));

  const GemmJob job{ki, A, B, m, n, k, alpha, overwrite_first, split_rows, row_tiles, kc_max, packed_b.data(),
                    packed_a_all.data(), c, ldc};
  parallel_region(threads, [&](int t, int nt) { job.run(t, nt); });
}

}  // namespace sr

extern "C" SR_API sr_status sr_matmul_f32(int32_t batch, int32_t m, int32_t n, int32_t k, float alpha, const float* a,
                                        int64_t lda, int64_t stride_a, int32_t trans_a, const float* b, int64_t ldb,
                                        int64_t stride_b, int32_t trans_b, float beta, float* c, int64_t ldc,
                                        int64_t stride_c) {
  if (batch < 0 || m < 0 || n < 0 || k < 0)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_matmul_f32: negative size (batch " + std::to_string(batch) + ", m " +
                                             std::to_string(m) + ", n " + std::to_string(n) + ", k " + std::to_string(k) + ")");
  if (static_cast<int64_t>(batch) * m * n == 0) return SR_OK;
  if (c == nullptr || (k > 0 && (a == nullptr || b == nullptr)))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_matmul_f32: null matrix pointer");
  int64_t need_lda = trans_a ? m : k, need_ldb = trans_b ? k : n;
  if (ldc < n || (k > 0 && (lda < std::max<int64_t>(1, need_lda) || ldb < std::max<int64_t>(1, need_ldb))))
    return sr::fail(SR_INVALID_ARGUMENT, "sr_matmul_f32: leading dimension too small (lda " + std::to_string(lda) +
                                             ", ldb " + std::to_string(ldb) + ", ldc " + std::to_string(ldc) + ")");
  try {
    for (int32_t p = 0; p < batch; ++p)
      sr::matmul_f32(m, n, k, alpha, a + p * stride_a, lda, trans_a != 0, b + p * stride_b, ldb, trans_b != 0, beta,
                   c + p * stride_c, ldc);
  } catch (const std::bad_alloc&) {
    return sr::fail(SR_OUT_OF_MEMORY, "sr_matmul_f32: out of memory for packing buffers");
  }
  return SR_OK;
}
