// sr_comm_*: the C ABI over sr::Communicator (see comm.h); argument checks live here, once for every transport.
#include "comm.h"

#include <string>

#include "status.h"

struct sr_comm {
  std::unique_ptr<sr::Communicator> impl;
};

namespace sr {
int64_t comm_element_bytes(int32_t dtype) {
  switch (dtype) {
    case SR_COMM_U8: return 1;
    case SR_COMM_F32: return 4;
    case SR_COMM_F64: return 8;
    case SR_COMM_I64: return 8;
    default: return 0;
  }
}
}  // namespace sr

namespace {
sr_status check(const sr_comm* comm, const char* fn) {
  if (comm == nullptr || !comm->impl) return sr::fail(SR_INVALID_ARGUMENT, std::string(fn) + ": communicator is null");
  return SR_OK;
}

sr_status check_buffer(const void* data, int64_t count, int32_t dtype, const char* fn, const char* name) {
  if (sr::comm_element_bytes(dtype) == 0)
    return sr::fail(SR_INVALID_ARGUMENT, std::string(fn) + ": unknown element type " + std::to_string(dtype));
  if (count < 0) return sr::fail(SR_INVALID_ARGUMENT, std::string(fn) + ": negative count " + std::to_string(count));
  if (count > 0 && data == nullptr) return sr::fail(SR_INVALID_ARGUMENT, std::string(fn) + ": " + name + " is null");
  return SR_OK;
}

sr_status check_summable(int32_t dtype, const char* fn) {
  if (dtype == SR_COMM_F32 || dtype == SR_COMM_F64 || dtype == SR_COMM_I64) return SR_OK;
  return sr::fail(SR_UNSUPPORTED, std::string(fn) + ": sums are defined for f32, f64 and i64 only (type " +
                                      std::to_string(dtype) + ")");
}
}  // namespace

extern "C" SR_API sr_status sr_comm_transports(uint32_t* transports) {
  if (transports == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_comm_transports: transports is null");
  uint32_t t = 0;
#ifdef SR_HAVE_MPI
  t |= 1u << SR_COMM_MPI;
#endif
#ifdef SR_HAVE_NCCL
  t |= 1u << SR_COMM_NCCL;
#endif
  *transports = t;
  return SR_OK;
}

extern "C" SR_API sr_status sr_comm_create_mpi(sr_comm** comm, int32_t* rank, int32_t* size) {
  if (comm == nullptr || rank == nullptr || size == nullptr)
    return sr::fail(SR_INVALID_ARGUMENT, "sr_comm_create_mpi: an output pointer is null");
  *comm = nullptr;
#ifdef SR_HAVE_MPI
  std::unique_ptr<sr::Communicator> impl;
  sr_status s = sr::make_mpi_communicator(&impl);
  if (s != SR_OK) return s;
  *rank = impl->rank();
  *size = impl->size();
  *comm = new sr_comm{std::move(impl)};
  return SR_OK;
#else
  return sr::fail(SR_UNSUPPORTED,
                  "this build of libsaferlhf_native has no MPI: CMake did not find it (Debian: apt-get install "
                  "libopenmpi-dev openmpi-bin, then rebuild)");
#endif
}

extern "C" SR_API sr_status sr_comm_create_nccl(sr_comm* bootstrap, int32_t cuda_device, void* stream, sr_comm** comm) {
  if (comm == nullptr) return sr::fail(SR_INVALID_ARGUMENT, "sr_comm_create_nccl: comm is null");
  *comm = nullptr;
  if (sr_status s = check(bootstrap, "sr_comm_create_nccl"); s != SR_OK) return s;
#ifdef SR_HAVE_NCCL
  std::unique_ptr<sr::Communicator> impl;
  sr_status s = sr::make_nccl_communicator(bootstrap->impl.get(), cuda_device, stream, &impl);
  if (s != SR_OK) return s;
  *comm = new sr_comm{std::move(impl)};
  return SR_OK;
#else
  (void)cuda_device;
  (void)stream;
  return sr::fail(SR_UNSUPPORTED,
                  "this build of libsaferlhf_native has no NCCL: CMake did not find nccl.h and the CUDA runtime");
#endif
}

extern "C" SR_API sr_status sr_comm_destroy(sr_comm* comm) {
  delete comm;
  return SR_OK;
}

extern "C" SR_API sr_status sr_comm_barrier(sr_comm* comm) {
  if (sr_status s = check(comm, "sr_comm_barrier"); s != SR_OK) return s;
  return comm->impl->barrier();
}

extern "C" SR_API sr_status sr_comm_broadcast(sr_comm* comm, void* data, int64_t count, int32_t dtype, int32_t root) {
  const char* fn = "sr_comm_broadcast";
  if (sr_status s = check(comm, fn); s != SR_OK) return s;
  if (sr_status s = check_buffer(data, count, dtype, fn, "data"); s != SR_OK) return s;
  if (root < 0 || root >= comm->impl->size())
    return sr::fail(SR_INVALID_ARGUMENT, std::string(fn) + ": root " + std::to_string(root) + " is not a rank of " +
                                             std::to_string(comm->impl->size()));
  return comm->impl->broadcast(data, count, dtype, root);
}

extern "C" SR_API sr_status sr_comm_all_reduce_sum(sr_comm* comm, void* data, int64_t count, int32_t dtype) {
  const char* fn = "sr_comm_all_reduce_sum";
  if (sr_status s = check(comm, fn); s != SR_OK) return s;
  if (sr_status s = check_buffer(data, count, dtype, fn, "data"); s != SR_OK) return s;
  if (sr_status s = check_summable(dtype, fn); s != SR_OK) return s;
  return comm->impl->all_reduce_sum(data, count, dtype);
}

extern "C" SR_API sr_status sr_comm_all_gather(sr_comm* comm, const void* send, void* recv, int64_t count, int32_t dtype) {
  const char* fn = "sr_comm_all_gather";
  if (sr_status s = check(comm, fn); s != SR_OK) return s;
  if (sr_status s = check_buffer(send, count, dtype, fn, "send"); s != SR_OK) return s;
  if (sr_status s = check_buffer(recv, count, dtype, fn, "recv"); s != SR_OK) return s;
  return comm->impl->all_gather(send, recv, count, dtype);
}

extern "C" SR_API sr_status sr_comm_reduce_scatter_sum(sr_comm* comm, const void* send, void* recv, int64_t count,
                                                       int32_t dtype) {
  const char* fn = "sr_comm_reduce_scatter_sum";
  if (sr_status s = check(comm, fn); s != SR_OK) return s;
  if (sr_status s = check_buffer(send, count, dtype, fn, "send"); s != SR_OK) return s;
  if (sr_status s = check_buffer(recv, count, dtype, fn, "recv"); s != SR_OK) return s;
  if (sr_status s = check_summable(dtype, fn); s != SR_OK) return s;
  return comm->impl->reduce_scatter_sum(send, recv, count, dtype);
}

extern "C" SR_API sr_status sr_comm_abort(sr_comm* comm, int32_t code) {
  if (sr_status s = check(comm, "sr_comm_abort"); s != SR_OK) return s;
  return comm->impl->abort(code);
}
