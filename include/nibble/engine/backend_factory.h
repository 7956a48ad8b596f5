#pragma once
// Chooses and builds the backend for `--device auto|cuda|cpu`: auto takes the
// CUDA backend when nibble was built with CUDA and a GPU is present, else the CPU.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "nibble/engine/backend.h"
#include "nibble/model/loader.h"

namespace nibble {

struct BackendOptions {
  std::string device = "auto";  // auto, cuda or cpu
  int threads = 0;              // CPU worker threads; 0 = all cores
  int block_size = 16;          // tokens per KV block
  int kv_cache_tokens = 0;      // CPU KV pool size; 0 = backend default
  double gpu_memory_utilization = 0.9;  // fraction of the GPU the plan may use
  uint64_t max_gpu_memory = 0;          // bytes; > 0 plans as for a card this size
  int max_num_seqs = 256;               // the GPU plans activations for this many sequences
  int max_num_batched_tokens = 2048;    // and this many tokens per step
};

// Whether this build has the CUDA backend and a usable GPU is present.
bool cuda_backend_available();

// Throws nibble::Error for an unknown device, or cuda without a usable GPU.
std::unique_ptr<Backend> make_backend(const LoadedModel& model, const BackendOptions& options);

// `--load-format dummy`: a backend over random GPTQ weights at the shapes of
// config (nibble/model/dummy_weights.h), same seed, same weights. CUDA
// generates them on the GPU; the CPU backend reads host_weights, which the
// backend must not outlive (declared first, so destroyed last).
struct DummyBackend {
  std::unique_ptr<LoadedModel> host_weights;  // null on CUDA
  std::unique_ptr<Backend> backend;
};
// config_path names the config in errors and logs. Throws nibble::Error for
// unsupported shapes, or CPU weights over half the machine's memory.
DummyBackend make_dummy_backend(const ModelConfig& config, const std::filesystem::path& config_path,
                                const BackendOptions& options, uint64_t seed = 0);

}  // namespace nibble
