// The communicator behind sr_comm_*: one abstract class, one implementation per transport (MPI for host
// memory, NCCL for CUDA device memory). Each is compiled only when its library is found by CMake.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "saferlhf.h"

namespace sr {

/// Bytes of one element of an SR_COMM_* element type, or 0 for an unknown type.
int64_t comm_element_bytes(int32_t dtype);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t size() const = 0;
  virtual sr_status barrier() = 0;
  /// data [count] on every rank receives root's data [count].
  virtual sr_status broadcast(void* data, int64_t count, int32_t dtype, int32_t root) = 0;
  /// data [count] becomes the element-wise sum over ranks, in place (f32, f64 and i64 only).
  virtual sr_status all_reduce_sum(void* data, int64_t count, int32_t dtype) = 0;
  /// recv [size * count] receives every rank's send [count], rank r at offset r * count.
  virtual sr_status all_gather(const void* send, void* recv, int64_t count, int32_t dtype) = 0;
  /// send [size * count] is summed over ranks; rank r receives the sum of block r in recv [count].
  virtual sr_status reduce_scatter_sum(const void* send, void* recv, int64_t count, int32_t dtype) = 0;
  /// Ends every rank of the job with exit code `code` (does not return on success).
  virtual sr_status abort(int32_t code) = 0;
};

#ifdef SR_HAVE_MPI
/// Initialises MPI (if not yet) and returns the world communicator; errors come back as statuses with
/// MPI's error string (MPI_ERRORS_RETURN).
sr_status make_mpi_communicator(std::unique_ptr<Communicator>* out);
#endif

#ifdef SR_HAVE_NCCL
/// A NCCL communicator over CUDA device buffers, bootstrapped through an MPI communicator (rank 0's unique
/// id is broadcast). `stream` is the cudaStream_t collectives run on (nullptr: the legacy default stream).
sr_status make_nccl_communicator(Communicator* bootstrap, int32_t cuda_device, void* stream,
                                 std::unique_ptr<Communicator>* out);
#endif

}  // namespace sr
