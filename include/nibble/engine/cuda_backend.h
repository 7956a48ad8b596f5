#pragma once
// The CUDA backend: the same forward semantics as the CPU backend (Llama,
// Mistral, Qwen2 over a flattened Batch with a paged KV cache) on one NVIDIA
// GPU, with fp16 activations, an fp32 residual stream and fp32 norms, softmax
// and logits. GPTQ linears run through kernels/gptq_gemm; decode steps replay
// CUDA graphs captured per batch-size bucket. All GPU memory (weights,
// activations, the fixed KV pool) is planned and allocated at startup, inside
// --gpu-memory-utilization or --max-gpu-memory, so nothing is allocated while
// serving. This header is free of CUDA includes.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nibble/engine/backend.h"
#include "nibble/model/config.h"
#include "nibble/model/loader.h"

namespace nibble {

struct CudaBackendOptions {
  int device = 0;
  // Fraction of the card's memory this process may use (weights, activations,
  // KV pool, CUDA context); ignored when max_gpu_memory > 0.
  double gpu_memory_utilization = 0.9;
  uint64_t max_gpu_memory = 0;  // bytes; see nibble/core/memory_size.h
  int block_size = 16;          // tokens per KV block
  int kv_cache_blocks = 0;      // > 0: exactly this many blocks (must fit); 0: as many as fit
  // Activation sizing: the most tokens and sequences one forward() may carry.
  int max_num_batched_tokens = 2048;
  int max_num_seqs = 256;
  // Decode steps (one new token per sequence) replay a CUDA graph captured
  // lazily for the smallest bucket >= the batch: 1, 2, 4, 8, then steps of 8
  // up to max_graph_batch_size (0: min(max_num_seqs, 256)).
  bool cuda_graphs = true;
  int max_graph_batch_size = 0;
  // Steps of up to programmatic_launch_max_tokens tokens launch their norms,
  // GPTQ products and decode attention with programmatic dependent launch
  // (compute capability 9.0+): each starts launching and loading its weights
  // while the kernel before it finishes. H200 (bench/NOTES.md, session 5):
  // batch 8 +5.5% (70B +2.3%), batch 32 -1.7% (70B +1.4%), batch 64 even.
  bool programmatic_launch = true;
  int programmatic_launch_max_tokens = 16;
};

// What the startup memory plan decided (bytes).
struct CudaMemoryReport {
  std::string device_name;
  uint64_t total_memory = 0;
  uint64_t budget = 0;          // what this process may use
  uint64_t used_at_start = 0;   // by the CUDA context and other processes
  uint64_t weights = 0;
  uint64_t activations = 0;     // activations, scratch, metadata, library workspaces
  uint64_t kv_cache = 0;
  uint64_t kv_bytes_per_token = 0;
  int kv_blocks = 0;
  int kv_tokens = 0;
};

class CudaBackend : public Backend {
 public:
  // forward() plus greedy sampling on the GPU: the argmax token of each
  // logits row (ties to the lowest id), without copying logits to the host.
  bool has_device_greedy() const override { return true; }
  std::vector<int32_t> forward_greedy(const Batch& batch) override = 0;
  // Turns decode-step graphs on or off (tests compare replay with eager).
  virtual void set_cuda_graphs(bool enabled) = 0;
  virtual int captured_graphs() const = 0;
  virtual const CudaMemoryReport& memory_report() const = 0;
};

// Copies the model's weights to the GPU (GPTQ linears repacked into the kernel
// layout). The model may be released afterwards. Throws nibble::Error when no
// device is usable, the model is unsupported or does not fit.
std::unique_ptr<CudaBackend> make_cuda_backend(const LoadedModel& model, const CudaBackendOptions& options = {});

// `--load-format dummy`: random 4-bit GPTQ weights (group 128, or the config's
// quantization settings when 4-bit) generated on the GPU at the shapes of
// config, deterministic for a seed; embeddings and lm_head random fp16.
std::unique_ptr<CudaBackend> make_dummy_cuda_backend(const ModelConfig& config, const CudaBackendOptions& options = {},
                                                     uint64_t seed = 0);

// True when a CUDA device can be used (the gpu tests skip otherwise).
bool cuda_device_available();
// The number of usable CUDA devices (0 when there is no driver or no GPU).
int cuda_device_count();


}  // namespace nibble
