#include "kv_cache/kv_cache.h"

namespace nibble::kernels {
namespace {

// One block per token; 16-byte copies.
__global__ void write_kv_kernel(const uint4* __restrict__ k, const uint4* __restrict__ v,
                                const int32_t* __restrict__ slot_mapping, uint4* __restrict__ k_cache,
                                uint4* __restrict__ v_cache, int num_kv_heads, int vecs_per_head, int block_size) {
  const int t = blockIdx.x;
  const int slot = slot_mapping[t];
  if (slot < 0) return;
  const size_t block = slot / block_size, offset = slot % block_size;
  const int total = num_kv_heads * vecs_per_head;
  for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
    const int h = idx / vecs_per_head, i = idx % vecs_per_head;
    const size_t dst = ((block * num_kv_heads + h) * block_size + offset) * vecs_per_head + i;
    const size_t src = static_cast<size_t>(t) * total + idx;
    k_cache[dst] = k[src];
    v_cache[dst] = v[src];
  }
}

}  // namespace

cudaError_t write_kv_cache(const __half* k, const __half* v, const int32_t* slot_mapping, __half* k_cache,
                           __half* v_cache, int tokens, int num_kv_heads, int head_dim, int block_size,
                           cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  if (head_dim % 8 != 0) return cudaErrorInvalidValue;
  write_kv_kernel<<<tokens, 128, 0, stream>>>(reinterpret_cast<const uint4*>(k), reinterpret_cast<const uint4*>(v),
                                               slot_mapping, reinterpret_cast<uint4*>(k_cache),
                                               reinterpret_cast<uint4*>(v_cache), num_kv_heads, head_dim / 8,
                                               block_size);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
