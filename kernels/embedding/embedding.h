#pragma once
// Embedding lookup into the fp32 residual stream, and a row gather.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// out[t, :] = float(table[ids[t], :]) for t < tokens; table is [vocab, dim] fp16.
// Ids are validated by the caller (0 <= id < vocab).
cudaError_t embedding_lookup(const __half* table, const int32_t* ids, float* out, int tokens, int dim,
                             cudaStream_t stream);

// dst[i, :] = src[indices[i], :] for i < rows; both [*, dim] fp16.
cudaError_t gather_rows(const __half* src, const int32_t* indices, __half* dst, int rows, int dim, cudaStream_t stream);

}  // namespace nibble::kernels
