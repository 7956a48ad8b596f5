#pragma once
// Internal to kernels/attention: the tensor-core kernel for prefill and mixed
// steps (prefill_attention_mma.cu), dispatched by paged_attention().
#include "attention/attention.h"

namespace nibble::kernels {

bool mma_attention_supported(const PagedAttentionParams& p);
// Same work items, tile rows and outputs (direct or split partials) as the
// CUDA-core kernel.
cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream);

// Block shapes of the kernel: warps per block x m-tiles (16 query rows each)
// per warp; {4, 1} takes one planner tile (64 rows), {8, 1} and {4, 2} two
// consecutive tiles of a sequence (128 rows). launch_mma_attention uses
// kMmaAttentionShape.
struct MmaAttentionShape {
  int warps;
  int m_tiles;
};
inline constexpr MmaAttentionShape kMmaAttentionShape{4, 2};
// Any block shape, for tests and benchmarks (split partials, if any, are left
// for the combine pass; shapes other than the three above are invalid).
cudaError_t launch_mma_attention_shape(const PagedAttentionParams& p, MmaAttentionShape shape, cudaStream_t stream);

}  // namespace nibble::kernels
