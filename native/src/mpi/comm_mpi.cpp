// sr::Communicator over MPI (host memory). Compiled only when CMake finds MPI (SR_HAVE_MPI).
// Errors return (MPI_ERRORS_RETURN on a duplicate of MPI_COMM_WORLD) and carry MPI's error string.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <string>

#include "../comm.h"
#include "../status.h"

namespace sr {
namespace {

MPI_Datatype mpi_type(int32_t dtype) {
  switch (dtype) {
    case SR_COMM_F32: return MPI_FLOAT;
    case SR_COMM_F64: return MPI_DOUBLE;
    case SR_COMM_I64: return MPI_INT64_T;
    default: return MPI_BYTE;
  }
}

sr_status mpi_fail(int code, const std::string& what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
  return fail(SR_INTERNAL, what + " failed: " + (len > 0 ? std::string(text, len) : "MPI error " + std::to_string(code)));
}

// MPI counts are int: calls on larger buffers go in chunks of at most this many elements.
constexpr int64_t kMaxChunk = 1 << 30;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool finalize, int32_t rank, int32_t size)
      : comm_(comm), finalize_(finalize), rank_(rank), size_(size) {}

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    MPI_Comm_free(&comm_);
    if (finalize_) MPI_Finalize();
  }

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }

  sr_status barrier() override {
    int rc = MPI_Barrier(comm_);
    return rc == MPI_SUCCESS ? SR_OK : mpi_fail(rc, "MPI_Barrier");
  }

  sr_status broadcast(void* data, int64_t count, int32_t dtype, int32_t root) override {
    auto* p = static_cast<char*>(data);
    int64_t bytes = comm_element_bytes(dtype);
    for (int64_t done = 0; done < count; done += kMaxChunk) {
      int n = static_cast<int>(std::min(kMaxChunk, count - done));
      int rc = MPI_Bcast(p + done * bytes, n, mpi_type(dtype), root, comm_);
      if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
    }
    return SR_OK;
  }

  sr_status all_reduce_sum(void* data, int64_t count, int32_t dtype) override {
    auto* p = static_cast<char*>(data);
    int64_t bytes = comm_element_bytes(dtype);
    for (int64_t done = 0; done < count; done += kMaxChunk) {
      int n = static_cast<int>(std::min(kMaxChunk, count - done));
      int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * bytes, n, mpi_type(dtype), MPI_SUM, comm_);
      if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce");
    }
    return SR_OK;
  }

  sr_status all_gather(const void* send, void* recv, int64_t count, int32_t dtype) override {
    if (count > INT_MAX) return too_large("sr_comm_all_gather", count);
    int rc = MPI_Allgather(send, static_cast<int>(count), mpi_type(dtype), recv, static_cast<int>(count),
                           mpi_type(dtype), comm_);
    return rc == MPI_SUCCESS ? SR_OK : mpi_fail(rc, "MPI_Allgather");
  }

  sr_status reduce_scatter_sum(const void* send, void* recv, int64_t count, int32_t dtype) override {
    if (count > INT_MAX) return too_large("sr_comm_reduce_scatter_sum", count);
    int rc = MPI_Reduce_scatter_block(send, recv, static_cast<int>(count), mpi_type(dtype), MPI_SUM, comm_);
    return rc == MPI_SUCCESS ? SR_OK : mpi_fail(rc, "MPI_Reduce_scatter_block");
  }

  sr_status abort(int32_t code) override {
    int rc = MPI_Abort(comm_, code);
    return mpi_fail(rc, "MPI_Abort");
  }

 private:
  static sr_status too_large(const char* fn, int64_t count) {
    return fail(SR_UNSUPPORTED, std::string(fn) + ": " + std::to_string(count) +
                                    " elements per rank exceed MPI's int count; split the call");
  }

  MPI_Comm comm_;
  bool finalize_;
  int32_t rank_;
  int32_t size_;
};

}  // namespace

sr_status make_mpi_communicator(std::unique_ptr<Communicator>* out) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) return fail(SR_INVALID_ARGUMENT, "sr_comm_create_mpi: MPI was already finalized in this process");
  bool we_init = false;
  if (!initialized) {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
    if (provided < MPI_THREAD_SERIALIZED)
      return fail(SR_UNSUPPORTED, "MPI_Init_thread: this MPI library does not provide MPI_THREAD_SERIALIZED");
    we_init = true;
  }
  MPI_Comm comm;
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  *out = std::make_unique<MpiCommunicator>(comm, we_init, rank, size);
  return SR_OK;
}

}  // namespace sr
