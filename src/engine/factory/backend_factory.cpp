#include "nibble/engine/backend_factory.h"

#include "nibble/core/error.h"
#include "nibble/engine/cpu_backend.h"

#ifdef NIBBLE_HAVE_CUDA
#include "nibble/engine/cuda_backend.h"
#endif

namespace nibble {

bool cuda_backend_available() {
#ifdef NIBBLE_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(const LoadedModel& model, const BackendOptions& options) {
  const std::string& device = options.device;
  if (device != "auto" && device != "cuda" && device != "cpu")
    throw_error("unknown device '" + device + "' (use auto, cuda or cpu)");
  bool use_cuda = device == "cuda" || (device == "auto" && cuda_backend_available());
  if (use_cuda) {
#ifdef NIBBLE_HAVE_CUDA
    if (!cuda_backend_available()) throw_error("--device cuda: no usable CUDA GPU was found");
    CudaBackendOptions cuda;
    cuda.block_size = options.block_size;
    cuda.gpu_memory_utilization = options.gpu_memory_utilization;
    cuda.max_gpu_memory = options.max_gpu_memory;
    cuda.max_num_seqs = options.max_num_seqs;
    cuda.max_num_batched_tokens = options.max_num_batched_tokens;
    return make_cuda_backend(model, cuda);
#else
    throw_error("--device cuda: this nibble was built without CUDA (rebuild with nvcc installed)");
#endif
  }
  CpuBackendOptions cpu;
  cpu.threads = options.threads;
  cpu.block_size = options.block_size;
  cpu.kv_cache_tokens = options.kv_cache_tokens;
  return make_cpu_backend(model, cpu);
}

}  // namespace nibble
