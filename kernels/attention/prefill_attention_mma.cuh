#pragma once
// Internal to kernels/attention: the tensor-core kernel for prefill and mixed
// steps (prefill_attention_mma.cu), dispatched by paged_attention().
#include "attention/attention.h"

namespace nibble::kernels {

bool mma_attention_supported(const PagedAttentionParams& p);
// Same work items, tile rows and outputs (direct or split partials) as the
// CUDA-core kernel.
cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream);

// Warps per block of launch_mma_attention: 4 (one planner tile of 64 rows per
// block) or 8 (two consecutive tiles of a sequence, 128 rows).
inline constexpr int kMmaAttentionWarps = 4;
// Either block shape, for tests and benchmarks (the split partials, if any,
// are left for the combine pass; warps other than 4 and 8 are invalid).
cudaError_t launch_mma_attention_warps(const PagedAttentionParams& p, int warps, cudaStream_t stream);

}  // namespace nibble::kernels
