#pragma once
// Internal to kernels/attention: the tensor-core kernel for prefill and mixed
// steps (prefill_attention_mma.cu), dispatched by paged_attention().
#include "attention/attention.h"

namespace nibble::kernels {

bool mma_attention_supported(const PagedAttentionParams& p);
// Same work items, tile rows and outputs (direct or split partials) as the
// CUDA-core kernel.
cudaError_t launch_mma_attention(const PagedAttentionParams& p, cudaStream_t stream);

}  // namespace nibble::kernels
