#include "nibble/engine/backend_factory.h"

#include "nibble/core/error.h"
#include "nibble/engine/cpu_backend.h"
#include "nibble/model/dummy_weights.h"

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

namespace {

bool use_cuda(const std::string& device) {
  if (device != "auto" && device != "cuda" && device != "cpu")
    throw_error("unknown device '" + device + "' (use auto, cuda or cpu)");
  const bool cuda = device == "cuda" || (device == "auto" && cuda_backend_available());
#ifndef NIBBLE_HAVE_CUDA
  if (cuda) throw_error("--device cuda: this nibble was built without CUDA (rebuild with nvcc installed)");
#else
  if (cuda && !cuda_backend_available()) throw_error("--device cuda: no usable CUDA GPU was found");
#endif
  return cuda;
}

CpuBackendOptions cpu_options(const BackendOptions& options) {
  CpuBackendOptions cpu;
  cpu.threads = options.threads;
  cpu.block_size = options.block_size;
  cpu.kv_cache_tokens = options.kv_cache_tokens;
  return cpu;
}

#ifdef NIBBLE_HAVE_CUDA
CudaBackendOptions cuda_options(const BackendOptions& options) {
  CudaBackendOptions cuda;
  cuda.block_size = options.block_size;
  cuda.gpu_memory_utilization = options.gpu_memory_utilization;
  cuda.max_gpu_memory = options.max_gpu_memory;
  cuda.max_num_seqs = options.max_num_seqs;
  cuda.max_num_batched_tokens = options.max_num_batched_tokens;
  return cuda;
}
#endif

}  // namespace

std::unique_ptr<Backend> make_backend(const LoadedModel& model, const BackendOptions& options) {
  if (use_cuda(options.device)) {
#ifdef NIBBLE_HAVE_CUDA
    return make_cuda_backend(model, cuda_options(options));
#endif
  }
  return make_cpu_backend(model, cpu_options(options));
}

DummyBackend make_dummy_backend(const ModelConfig& config, const std::filesystem::path& config_path,
                                const BackendOptions& options, uint64_t seed) {
  DummyBackend dummy;
  if (use_cuda(options.device)) {
#ifdef NIBBLE_HAVE_CUDA
    dummy.backend = make_dummy_cuda_backend(config, cuda_options(options), seed);
    return dummy;
#endif
  }
  DummyWeightsOptions weights;
  weights.seed = seed;
  dummy.host_weights = make_dummy_weights(config, config_path, weights);
  dummy.backend = make_cpu_backend(*dummy.host_weights, cpu_options(options));
  return dummy;
}

}  // namespace nibble
