#pragma once
// The CPU reference backend: the Llama/Mistral/Qwen2 forward pass in fp32 over a
// flattened Batch, with the paged KV cache held in fp32 host memory. GPTQ
// weights are dequantized tile by tile at run time (never the whole model at
// once); dense F16/BF16/F32 weights are converted the same way. Always built,
// it runs in CI and is what the CUDA backend is tested against.
#include <memory>

#include "nibble/engine/backend.h"
#include "nibble/model/loader.h"

namespace nibble {

struct CpuBackendOptions {
  // KV pool size. kv_cache_blocks wins when > 0; otherwise kv_cache_tokens
  // (rounded up to whole blocks) when > 0; otherwise the model's
  // max_position_embeddings capped at kDefaultKvTokens.
  int kv_cache_blocks = 0;
  int kv_cache_tokens = 0;
  int block_size = 16;
  // Worker threads including the caller; 0 = all cores.
  int threads = 0;

  static constexpr int kDefaultKvTokens = 8192;
};

// The model must outlive the backend (weights are views into it). Throws
// nibble::Error on an unsupported or inconsistent model or bad options.
// forward() runs on one thread at a time (the engine thread) and uses the
// backend's own worker pool; a malformed Batch throws before any KV write.
// Logits do not depend on how tokens are batched, paged or chunked (bit-exact
// for a fixed thread count).
std::unique_ptr<Backend> make_cpu_backend(const LoadedModel& model, const CpuBackendOptions& options = {});

}  // namespace nibble
