#pragma once
// The new tokens' keys and values into the paged cache, with rotary position
// embedding (rotate-half, Hugging Face transformers) applied to the queries and
// keys on the way: one kernel per layer reads the q/k/v products once.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// Cache layout (one layer): [num_blocks, num_kv_heads, block_size, head_dim] fp16,
// so one head's tokens of a block are contiguous.
struct RopeKvParams {
  // Token t's heads: q + t * ldq ([num_q_heads, head_dim]), k + t * ldk and
  // v + t * ldv ([num_kv_heads, head_dim]); the strides let them be three
  // column ranges of one fused product. All multiples of 8 halves.
  const __half* q = nullptr;
  const __half* k = nullptr;
  const __half* v = nullptr;
  int ldq = 0, ldk = 0, ldv = 0;
  const int32_t* positions = nullptr;     // [tokens]
  const float* inv_freq = nullptr;        // [head_dim / 2], from rope_inv_freq()
  const int32_t* slot_mapping = nullptr;  // [tokens]: block * block_size + offset; negative: padding, skipped
  __half* q_out = nullptr;                // [tokens, num_q_heads, head_dim] rotated queries
  __half* k_cache = nullptr;
  __half* v_cache = nullptr;
  int tokens = 0, num_q_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 0;
};

// For i < head_dim / 2 and angle = positions[t] * inv_freq[i] (fp32):
//   x[i] <- x[i] cos - x[i + half] sin,  x[i + half] <- x[i + half] cos + x[i] sin
// for the queries (into q_out) and keys (into the cache); values are copied.
cudaError_t rope_and_write_kv(const RopeKvParams& p, cudaStream_t stream);

}  // namespace nibble::kernels
