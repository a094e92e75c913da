// sr::Communicator over NCCL (CUDA device memory). Compiled only when CMake finds nccl.h, libnccl and the CUDA
// runtime (SR_HAVE_NCCL); bootstrapped through the MPI communicator, which broadcasts rank 0's unique id.
// Collectives are enqueued on the given stream and waited for before returning, so a call has the same
// completion semantics as the MPI transport.
#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

#include "../comm.h"
#include "../status.h"

namespace sr {
namespace {

sr_status nccl_fail(ncclResult_t r, const std::string& what) {
  return fail(SR_INTERNAL, what + " failed: " + ncclGetErrorString(r));
}

sr_status cuda_fail(cudaError_t e, const std::string& what) {
  return fail(SR_INTERNAL, what + " failed: " + cudaGetErrorString(e));
}

bool nccl_type(int32_t dtype, ncclDataType_t* out) {
  switch (dtype) {
    case SR_COMM_U8: *out = ncclUint8; return true;
    case SR_COMM_F32: *out = ncclFloat32; return true;
    case SR_COMM_F64: *out = ncclFloat64; return true;
    case SR_COMM_I64: *out = ncclInt64; return true;
    default: return false;
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream, int32_t rank, int32_t size)
      : comm_(comm), stream_(stream), rank_(rank), size_(size) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }

  sr_status barrier() override {
    // An all-reduce of one byte-sized value is NCCL's barrier.
    void* one = nullptr;
    cudaError_t e = cudaMalloc(&one, sizeof(float));
    if (e != cudaSuccess) return cuda_fail(e, "cudaMalloc");
    sr_status s = all_reduce_sum(one, 1, SR_COMM_F32);
    cudaFree(one);
    return s;
  }

  sr_status broadcast(void* data, int64_t count, int32_t dtype, int32_t root) override {
    ncclDataType_t t;
    if (!nccl_type(dtype, &t)) return fail(SR_INVALID_ARGUMENT, "sr_comm_broadcast: unknown element type");
    ncclResult_t r = ncclBroadcast(data, data, static_cast<size_t>(count), t, root, comm_, stream_);
    return r == ncclSuccess ? wait("ncclBroadcast") : nccl_fail(r, "ncclBroadcast");
  }

  sr_status all_reduce_sum(void* data, int64_t count, int32_t dtype) override {
    ncclDataType_t t;
    if (!nccl_type(dtype, &t)) return fail(SR_INVALID_ARGUMENT, "sr_comm_all_reduce_sum: unknown element type");
    ncclResult_t r = ncclAllReduce(data, data, static_cast<size_t>(count), t, ncclSum, comm_, stream_);
    return r == ncclSuccess ? wait("ncclAllReduce") : nccl_fail(r, "ncclAllReduce");
  }

  sr_status all_gather(const void* send, void* recv, int64_t count, int32_t dtype) override {
    ncclDataType_t t;
    if (!nccl_type(dtype, &t)) return fail(SR_INVALID_ARGUMENT, "sr_comm_all_gather: unknown element type");
    ncclResult_t r = ncclAllGather(send, recv, static_cast<size_t>(count), t, comm_, stream_);
    return r == ncclSuccess ? wait("ncclAllGather") : nccl_fail(r, "ncclAllGather");
  }

  sr_status reduce_scatter_sum(const void* send, void* recv, int64_t count, int32_t dtype) override {
    ncclDataType_t t;
    if (!nccl_type(dtype, &t)) return fail(SR_INVALID_ARGUMENT, "sr_comm_reduce_scatter_sum: unknown element type");
    ncclResult_t r = ncclReduceScatter(send, recv, static_cast<size_t>(count), t, ncclSum, comm_, stream_);
    return r == ncclSuccess ? wait("ncclReduceScatter") : nccl_fail(r, "ncclReduceScatter");
  }

  sr_status abort(int32_t code) override {
    ncclCommAbort(comm_);
    return fail(SR_INTERNAL, "NCCL communicator aborted (code " + std::to_string(code) +
                                 "); abort the job through the MPI communicator");
  }

 private:
  sr_status wait(const char* what) {
    cudaError_t e = cudaStreamSynchronize(stream_);
    return e == cudaSuccess ? SR_OK : cuda_fail(e, std::string("cudaStreamSynchronize after ") + what);
  }

  ncclComm_t comm_;
  cudaStream_t stream_;
  int32_t rank_;
  int32_t size_;
};

}  // namespace

sr_status make_nccl_communicator(Communicator* bootstrap, int32_t cuda_device, void* stream,
                                 std::unique_ptr<Communicator>* out) {
  cudaError_t e = cudaSetDevice(cuda_device);
  if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice(" + std::to_string(cuda_device) + ")");
  ncclUniqueId id;
  if (bootstrap->rank() == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return nccl_fail(r, "ncclGetUniqueId");
  }
  sr_status s = bootstrap->broadcast(&id, sizeof(id), SR_COMM_U8, 0);
  if (s != SR_OK) return s;
  ncclComm_t comm;
  ncclResult_t r = ncclCommInitRank(&comm, bootstrap->size(), id, bootstrap->rank());
  if (r != ncclSuccess) return nccl_fail(r, "ncclCommInitRank");
  *out = std::make_unique<NcclCommunicator>(comm, static_cast<cudaStream_t>(stream), bootstrap->rank(),
                                            bootstrap->size());
  return SR_OK;
}

}  // namespace sr
