/* saferlhf.h: the whole C ABI of libsaferlhf_native.
 * Every entry point is extern "C", prefixed sr_, and returns an sr_status; on failure the error text
 * is available from sr_last_error() (thread-local) and the C# side throws a typed exception with it. */
#ifndef SAFERLHF_H
#define SAFERLHF_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SR_API __declspec(dllexport)
#else
#define SR_API __attribute__((visibility("default")))
#endif

typedef enum sr_status {
  SR_OK = 0,
  SR_INVALID_ARGUMENT = 1,
  SR_UNSUPPORTED = 2,
  SR_OUT_OF_MEMORY = 3,
  SR_INTERNAL = 4,
  SR_INDEX_OUT_OF_RANGE = 5
} sr_status;

/* CPU features detected at run time (bit flags for sr_cpu_features). */
enum {
  SR_CPU_SSE42 = 1 << 0,
  SR_CPU_AVX2 = 1 << 1,
  SR_CPU_FMA = 1 << 2,
  SR_CPU_F16C = 1 << 3,
  SR_CPU_AVX512F = 1 << 4,
  SR_CPU_AVX512BW = 1 << 5,
  SR_CPU_AVX512VL = 1 << 6,
  SR_CPU_AVX512VNNI = 1 << 7,
  SR_CPU_AVX512BF16 = 1 << 8,
  SR_CPU_AVXVNNI = 1 << 9,
  SR_CPU_AVX512VBMI = 1 << 10
};

/** The error text of the last failing sr_ call on this thread ("" if none). */
SR_API const char* sr_last_error(void);

/** Library version as "major.minor.patch". */
SR_API sr_status sr_version(const char** version);

/** CPU feature bits (SR_CPU_*) and the CPU brand string (into brand, at most brand_len bytes incl. NUL). */
SR_API sr_status sr_cpu_features(uint32_t* features, char* brand, int32_t brand_len);

/* ---------------- threads and machine probes ---------------- */

/** Threads every kernel uses (1 to 1024); 0 restores the default: the cores in the process's CPU affinity mask.
 *  Kernels run on a pool whose idle threads spin briefly and then sleep. */
SR_API sr_status sr_set_num_threads(int32_t threads);
SR_API sr_status sr_get_num_threads(int32_t* threads);

enum { SR_ISA_SCALAR = 0, SR_ISA_AVX2 = 1, SR_ISA_AVX512 = 2, SR_ISA_AVX512_NO_VBMI = 3 };
/** Caps the instruction set the GEMM and quantized dot-product kernels dispatch to (for testing the
 *  narrower paths on a wide machine); SR_ISA_AVX512 (the default) uses the best the CPU has;
 *  SR_ISA_AVX512_NO_VBMI everything but AVX-512 VBMI (the quantized matmul's register tile needs it). Row kernels
 *  compiled as target clones always use the best available. */
SR_API sr_status sr_set_max_isa(int32_t level);

/** Peak fp32 FMA rate: runs independent FMA chains (widest vector ISA present) for about `seconds` on
 *  `threads` threads and reports GFLOP/s (2 flops per FMA lane). */
SR_API sr_status sr_probe_fma_f32(double seconds, int32_t threads, double* gflops);

/** Streaming bandwidth: copies a buffer of `bytes` bytes (read + write counted) for about `seconds` on
 *  `threads` threads and reports GB/s. */
SR_API sr_status sr_probe_stream(int64_t bytes, double seconds, int32_t threads, double* gbps);

/* ---------------- dense linear algebra (matmul.cpp) ---------------- */

/** c[p] = alpha · op(a[p]) · op(b[p]) + beta · c[p] for p < batch, all row-major fp32.
 *  op(a) is m×k: a is m×k (lda ≥ k), or k×m when trans_a (lda ≥ m); op(b) is k×n: b is k×n (ldb ≥ n),
 *  or n×k when trans_b (ldb ≥ k); c is m×n (ldc ≥ n). stride_* are element distances between batch
 *  items. beta = 0 overwrites c (its old contents are never read). */
SR_API sr_status sr_matmul_f32(int32_t batch, int32_t m, int32_t n, int32_t k, float alpha,
                             const float* a, int64_t lda, int64_t stride_a, int32_t trans_a,
                             const float* b, int64_t ldb, int64_t stride_b, int32_t trans_b,
                             float beta, float* c, int64_t ldc, int64_t stride_c);

/* ---------------- fused neural-network ops (contiguous fp32, rows × dim) ---------------- */

/** y [rows, dim] = x / rms(x) · w; rstd [rows] = 1 / sqrt(mean(x²) + eps). */
SR_API sr_status sr_rmsnorm_forward_f32(const float* x, const float* w, float* y, float* rstd,
                                        int64_t rows, int64_t dim, float eps);
/** dx [rows, dim] (overwritten) and dw [dim] (accumulated into) of sr_rmsnorm_forward_f32. */
SR_API sr_status sr_rmsnorm_backward_f32(const float* x, const float* w, const float* rstd, const float* dy,
                                         float* dx, float* dw, int64_t rows, int64_t dim);

enum { SR_ROPE_INTERLEAVED = 0, SR_ROPE_HALF = 1 };
/** y [batch, seq, heads, head_dim] = x rotated by positions[b, t] · theta^(−2i/head_dim) (pairs
 *  (2i, 2i+1) for SR_ROPE_INTERLEAVED, (i, i + head_dim/2) for SR_ROPE_HALF); inverse ≠ 0 rotates by the
 *  negative angle. y may alias x. */
SR_API sr_status sr_rope_f32(const float* x, const int32_t* positions, float* y, int64_t batch, int64_t seq,
                             int64_t heads, int64_t head_dim, double theta, int32_t style, int32_t inverse);

/** y = silu(gate) · up over n elements. */
SR_API sr_status sr_swiglu_forward_f32(const float* gate, const float* up, float* y, int64_t n);
/** d_gate, d_up (overwritten) of sr_swiglu_forward_f32. */
SR_API sr_status sr_swiglu_backward_f32(const float* gate, const float* up, const float* dy, float* d_gate,
                                        float* d_up, int64_t n);

/** y [rows, dim] = softmax(x) over each row, or log-softmax when log ≠ 0. */
SR_API sr_status sr_softmax_forward_f32(const float* x, float* y, int64_t rows, int64_t dim, int32_t log);
/** dx of sr_softmax_forward_f32 given its output y and dy. */
SR_API sr_status sr_softmax_backward_f32(const float* y, const float* dy, float* dx, int64_t rows, int64_t dim,
                                         int32_t log);

/** losses [rows] = lse(logits[r]) − logits[r, targets[r]] (0 where target = ignore_index);
 *  lse [rows] saved. A target outside [0, vocab) other than ignore_index is SR_INVALID_ARGUMENT. */
SR_API sr_status sr_cross_entropy_forward_f32(const float* logits, const int32_t* targets, float* losses,
                                              float* lse, int64_t rows, int64_t vocab, int32_t ignore_index);
/** d_logits [rows, vocab] = d_losses[r] · (softmax(logits[r]) − onehot(targets[r])), 0 on ignored rows. */
SR_API sr_status sr_cross_entropy_backward_f32(const float* logits, const int32_t* targets, const float* lse,
                                               const float* d_losses, float* d_logits, int64_t rows,
                                               int64_t vocab, int32_t ignore_index);

/** out = Σ fp32(x[i]·x[i]) accumulated in double (the squared gradient norm for clipping); independent of the
 *  thread count. */
SR_API sr_status sr_sum_of_squares_f32(const float* x, int64_t n, double* out);
/** One AdamW step in place over n parameters (decoupled weight decay, bias correction, step ≥ 1). */
SR_API sr_status sr_adamw_f32(float* param, const float* grad, float* m, float* v, int64_t n, double lr,
                              double beta1, double beta2, double eps, double weight_decay, int32_t step);

/* ---------------- attention (attention.cpp) ---------------- */

/** Causal flash attention with GQA. q [B, T, H, D]; k, v [B, S, Hkv, D] (H a multiple of Hkv, S ≥ T);
 *  query t sits at key position S − T + t and sees keys ≤ that which are not masked; key_mask [B, S]
 *  (nonzero keep, 0 pad) or null; o [B, T, H, D]; lse [B, H, T] log-sum-exp of the scaled scores.
 *  A query with no visible key gets o = 0 and lse = −inf. k and v rows of one batch entry are packed
 *  [S, Hkv, D]; kv_batch_stride is the element distance between batch entries (0: packed, S·Hkv·D), so a
 *  KV cache [B, capacity, Hkv, D] is read in place. */
SR_API sr_status sr_attention_forward_f32(const float* q, const float* k, const float* v, const float* key_mask,
                                          float* o, float* lse, int64_t batch, int64_t t_len, int64_t s_len,
                                          int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t kv_batch_stride,
                                          float scale);
/** sr_attention_forward_f32 with k and v stored as BF16 (the upper 16 bits of an fp32: a BF16 KV cache), widened to
 *  fp32 as they are read; everything else fp32. */
SR_API sr_status sr_attention_forward_f32_bf16kv(const float* q, const uint16_t* k, const uint16_t* v,
                                                 const float* key_mask, float* o, float* lse, int64_t batch, int64_t t_len,
                                                 int64_t s_len, int64_t heads, int64_t kv_heads, int64_t head_dim,
                                                 int64_t kv_batch_stride, float scale);
/** dq, dk, dv (overwritten) of sr_attention_forward_f32, recomputing probabilities from lse. */
SR_API sr_status sr_attention_backward_f32(const float* q, const float* k, const float* v, const float* key_mask,
                                           const float* o, const float* lse, const float* d_out, float* dq,
                                           float* dk, float* dv, int64_t batch, int64_t t_len, int64_t s_len,
                                           int64_t heads, int64_t kv_heads, int64_t head_dim, float scale);

/* ---------------- weights in a storage type: block quantization and BF16 ----------------
 * Quantize (quantize.cpp), Dequantize (dequantize.cpp) and QuantizedMatMul (quantized_matmul.cpp; the K-quants in
 * kquant.cpp, BF16 in bf16_matmul.cpp). "Quantized" names a weight kept in a reduced-precision storage type: ggml
 * blocks or BF16. */

enum { SR_Q8_0 = 0, SR_Q4_0 = 1, SR_Q4_K = 2, SR_Q5_K = 3, SR_Q6_K = 4, SR_BF16 = 5, SR_BF16_DOT = 6, SR_Q8_0_X16 = 7, SR_Q4_0_X16 = 8,
       SR_Q4_K_X16 = 9, SR_Q5_K_X16 = 10, SR_Q6_K_X16 = 11 };
/** Q8_0 block: fp16 d, int8 q[32], x ≈ d·q. Q4_0 block: fp16 d, uint8 qs[16] (element j in the low
 *  nibble of qs[j], element j+16 in the high nibble), x ≈ d·(q − 8). Q4_K, Q5_K, Q6_K: ggml's 256-weight
 *  super-blocks (144, 176, 210 bytes; kquant.cpp), read from files: dequantize and the two matmuls accept them
 *  (k and n a multiple of 256), quantize does not. Their forward on AVX-512 VNNI rounds x to int8 per 32-block as
 *  Q8_0 / Q4_0 do (every row count); elsewhere, and in the backward, fp32 products of the decoded weights.
 *  SR_BF16: the upper 16 bits of an fp32 per weight, accepted by the two matmuls only; widened exactly, fp32
 *  products. SR_BF16_DOT (forward matmul only): the same weights through AVX-512 BF16 vdpbf16ps with x rounded to
 *  bf16 (nearest-even) first; SR_UNSUPPORTED on a CPU without AVX512_BF16.
 *  SR_Q8_0_X16 / SR_Q4_0_X16: the same blocks with the rows interleaved in groups of 16 (m a multiple of 16), the
 *  layout the column-lane product reads in place (quant_gemm.cpp). Group g (rows 16g .. 16g+15) takes the bytes
 *  [g·B·S, (g+1)·B·S) with B = k/32 blocks per row and S = 16 × block bytes; in it, for each block b, 64-byte chunks
 *  c = 0..3 (Q4_0) or 0..7 (Q8_0), chunk c holding for row r of the group, at bytes 4r .. 4r+3, the block's value
 *  bytes qs[4c .. 4c+3] (Q8_0: each XOR 0x80, i.e. q + 128 unsigned); after the last block, the fp16 scales d of
 *  block b, row r at index 16b + r.
 *  SR_Q4_K_X16 / SR_Q5_K_X16 / SR_Q6_K_X16: Q4_K / Q5_K / Q6_K super-blocks (B = 144 / 176 / 210 bytes) with the rows
 *  interleaved in groups of 16 by 4-byte words (m a multiple of 16, k of 256; kquant_x16.cpp). Group g takes the bytes
 *  [g·16·B·S, (g+1)·16·B·S) with S = k/256 super-blocks per row; in it super-block s fills 16·B bytes, whose 64-byte
 *  chunk t (t < B/4, rounded down) holds for row r of the group, at bytes 4r .. 4r+3, the bytes 4t .. 4t+3 of that
 *  row's super-block s; for Q6_K, 32 more bytes hold at 2r .. 2r+1 the row's bytes 208 .. 209 (its fp16 d). Their
 *  forward rounds x to int8 per 32-block, as the file layout's does on AVX-512 VNNI.
 *  The interleaved types are accepted by the two matmuls, sr_interleave_rows_q and sr_dequantize_f32_rows. */
SR_API sr_status sr_quant_block_bytes(int32_t type, int32_t* bytes);
/** Quantizes n floats (n a multiple of 32) into n/32 blocks. */
SR_API sr_status sr_quantize_f32(int32_t type, const float* x, void* blocks, int64_t n);
/** Dequantizes n/32 blocks (n/256 for the K-quants) into n floats. */
SR_API sr_status sr_dequantize_f32(int32_t type, const void* blocks, float* x, int64_t n);
/** w [m, k] in SR_Q8_0 / SR_Q4_0 / SR_Q4_K / SR_Q5_K / SR_Q6_K → the same weights in the matching interleaved type
 *  (type names it; m a multiple of 16, k of the block); dst has the same size as src. */
SR_API sr_status sr_interleave_rows_q(int32_t type, const void* src, void* dst, int64_t m, int64_t k);
/** w [m, k] in any block type, file layout or interleaved → x [m, k] floats. */
SR_API sr_status sr_dequantize_f32_rows(int32_t type, const void* w, float* x, int64_t m, int64_t k);
/** y [n, m] = x [n, k] · wᵀ with w [m, k] in a storage type (k a multiple of its block); for Q8_0 / Q4_0, x is
 *  quantized to int8 per 32-block on the fly. */
SR_API sr_status sr_quantized_matmul_f32(int32_t type, const float* x, const void* w, float* y, int64_t n,
                                         int64_t m, int64_t k);
/** dx [n, k] = dy [n, m] · w with w [m, k] in a storage type, decoded exactly to fp32 (dx overwritten). */
SR_API sr_status sr_quantized_matmul_backward_f32(int32_t type, const float* dy, const void* w, float* dx,
                                                  int64_t n, int64_t m, int64_t k);

/* ---------------- communicator for data parallel (comm.cpp; mpi/comm_mpi.cpp, nccl/comm_nccl.cpp) ---------------- */

/** A communicator over the ranks of a job. MPI moves host memory; NCCL moves CUDA device memory. A transport
 *  exists only when CMake found its library at build time (sr_comm_transports). A process that was not launched
 *  by mpirun/srun needs no communicator: one rank is the identity and the C# side handles it without native code. */
typedef struct sr_comm sr_comm;
enum { SR_COMM_MPI = 1, SR_COMM_NCCL = 2 };
/** Element types of communicator buffers; sums are defined for F32, F64 and I64. */
enum { SR_COMM_U8 = 0, SR_COMM_F32 = 1, SR_COMM_F64 = 2, SR_COMM_I64 = 3 };

/** Bit (1 << SR_COMM_*) for every transport compiled into this library. */
SR_API sr_status sr_comm_transports(uint32_t* transports);
/** Initialises MPI (MPI_THREAD_SERIALIZED) unless already done and returns a duplicate of MPI_COMM_WORLD whose
 *  errors come back as statuses with MPI's error string. */
SR_API sr_status sr_comm_create_mpi(sr_comm** comm, int32_t* rank, int32_t* size);
/** A NCCL communicator over the same ranks as `bootstrap` (rank 0's unique id is broadcast through it), on CUDA
 *  device `cuda_device`, running collectives on `stream` (a cudaStream_t; null: the default stream). */
SR_API sr_status sr_comm_create_nccl(sr_comm* bootstrap, int32_t cuda_device, void* stream, sr_comm** comm);
/** Frees the communicator (finalizes MPI if sr_comm_create_mpi initialised it). Null is allowed. */
SR_API sr_status sr_comm_destroy(sr_comm* comm);
SR_API sr_status sr_comm_barrier(sr_comm* comm);
/** data [count] on every rank receives root's data. */
SR_API sr_status sr_comm_broadcast(sr_comm* comm, void* data, int64_t count, int32_t dtype, int32_t root);
/** data [count] becomes the element-wise sum over all ranks (in place). */
SR_API sr_status sr_comm_all_reduce_sum(sr_comm* comm, void* data, int64_t count, int32_t dtype);
/** recv [size * count] receives every rank's send [count], rank r's at offset r * count. */
SR_API sr_status sr_comm_all_gather(sr_comm* comm, const void* send, void* recv, int64_t count, int32_t dtype);
/** send [size * count] is summed over ranks; rank r receives block r of the sum in recv [count]. */
SR_API sr_status sr_comm_reduce_scatter_sum(sr_comm* comm, const void* send, void* recv, int64_t count, int32_t dtype);
/** Ends every rank of the job with exit code `code`. */
SR_API sr_status sr_comm_abort(sr_comm* comm, int32_t code);

#ifdef __cplusplus
}
#endif
#endif
