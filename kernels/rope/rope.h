#pragma once
// Rotary position embedding in the rotate-half form (Hugging Face transformers),
// applied in place to the query and key heads of each token.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// q: [tokens, num_q_heads, head_dim], k: [tokens, num_k_heads, head_dim], fp16, in place.
// For i < head_dim/2 and angle = positions[t] * inv_freq[i] (fp32):
//   x[i] <- x[i] cos - x[i + half] sin,  x[i + half] <- x[i + half] cos + x[i] sin.
// inv_freq (device, head_dim/2 floats) comes from rope_inv_freq() in rope_ref.h,
// which applies the default, linear or llama3 scaling.
cudaError_t apply_rope(__half* q, __half* k, const int32_t* positions, const float* inv_freq, int tokens,
                       int num_q_heads, int num_k_heads, int head_dim, cudaStream_t stream);

}  // namespace nibble::kernels
