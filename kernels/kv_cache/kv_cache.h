#pragma once
// Writing the new tokens' K and V into the paged cache.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// Cache layout (one layer): [num_blocks, num_kv_heads, block_size, head_dim] fp16,
// so one head's tokens of a block are contiguous. Token t goes to slot
// slot_mapping[t] = block * block_size + offset; a negative slot is skipped
// (padding). k, v: [tokens, num_kv_heads, head_dim]. head_dim % 8 == 0.
cudaError_t write_kv_cache(const __half* k, const __half* v, const int32_t* slot_mapping, __half* k_cache,
                           __half* v_cache, int tokens, int num_kv_heads, int head_dim, int block_size,
                           cudaStream_t stream);

}  // namespace nibble::kernels
