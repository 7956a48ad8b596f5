#pragma once
// Every activation, scratch and step-metadata buffer of a forward pass, carved
// out of one allocation whose size is known before it is made (memory plan).
// Pointers never move, so captured CUDA graphs stay valid.
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

#include "device_buffer.h"
#include "nibble/model/config.h"
#include "sampling/sampling.h"

namespace nibble::cuda {

struct WorkspaceLimits {
  int max_tokens = 0;       // tokens per forward
  int max_seqs = 0;         // sequences per forward, and logits rows
  int max_work = 0;         // attention work items
  int max_kv_indices = 0;   // block-table entries per forward
  int split_capacity = 0;   // tokens x flash-decoding splits
  size_t gptq_splitk_bytes = 0;
  size_t gptq_dequant_bytes = 0;
  size_t cublas_bytes = 32u << 20;
  int max_sample_jobs = 0;        // samples drawn on the device per step
  size_t max_sample_entries = 0;  // their bias / suppression / penalty entries
};

// Step metadata (int32), uploaded before each forward.
struct StepMetadata {
  int32_t* token_ids = nullptr;       // [max_tokens]
  int32_t* positions = nullptr;       // [max_tokens]
  int32_t* slot_mapping = nullptr;    // [max_tokens]
  int32_t* query_start = nullptr;     // [max_seqs + 1]
  int32_t* seq_lens = nullptr;        // [max_seqs]
  int32_t* kv_indptr = nullptr;       // [max_seqs + 1]
  int32_t* kv_indices = nullptr;      // [max_kv_indices]
  int32_t* work_seq = nullptr;        // [max_work]
  int32_t* work_qoff = nullptr;       // [max_work]
  int32_t* logits_indices = nullptr;  // [max_seqs]
};

struct Workspace {
  WorkspaceLimits limits;
  float* residual = nullptr;   // [tokens, hidden] fp32 residual stream
  __half* normed = nullptr;    // [tokens, hidden]
  __half* qkv = nullptr;       // [tokens, (heads + 2 kv_heads) * head_dim]: the q/k/v products
  __half* q = nullptr;         // [tokens, heads * head_dim] rotated queries
  __half* attn = nullptr;      // [tokens, heads * head_dim]
  __half* delta = nullptr;     // [tokens, hidden] output of o_proj / down_proj
  __half* gate_up = nullptr;   // [tokens, 2 intermediate]: the gate/up products
  __half* act = nullptr;       // [tokens, intermediate] silu(gate) * up
  __half* gathered = nullptr;  // [seqs, hidden] rows that produce logits
  float* logits = nullptr;     // [seqs, vocab]
  int32_t* sampled = nullptr;  // [seqs]
  float* split_out = nullptr;  // [split_capacity, heads, head_dim]
  float* split_lse = nullptr;  // [split_capacity, heads, 2]
  float* inv_freq = nullptr;   // [head_dim / 2]
  void* gptq_splitk = nullptr;
  void* gptq_dequant = nullptr;
  void* cublas = nullptr;
  StepMetadata meta;
  // Device sampling (kernels/sampling/sampling.h), uploaded per step.
  kernels::SampleJob* sample_jobs = nullptr;        // [max_sample_jobs]
  kernels::SampleEntry* sample_entries = nullptr;   // [max_sample_entries]
  kernels::SampleOutput* sample_out = nullptr;      // [max_sample_jobs]

  static size_t bytes_needed(const ModelConfig& c, const WorkspaceLimits& limits);
  // Allocates and zero-fills (the GPTQ split-K workspace must start zeroed).
  void allocate(const ModelConfig& c, const WorkspaceLimits& limits);

 private:
  template <typename Carve>
  void layout(const ModelConfig& c, Carve& carve);
  DeviceBuffer storage_;
};

}  // namespace nibble::cuda
