#include "kv_cache/kv_cache.h"

namespace nibble::kernels {
namespace {

// One block per token: threads walk the (head, i) pairs of q then k, then the
// 16-byte pieces of v.
__global__ void rope_write_kv_kernel(RopeKvParams p) {
  const int t = blockIdx.x;
  const int half = p.head_dim / 2;
  const float pos = static_cast<float>(p.positions[t]);
  const int slot = p.slot_mapping[t];
  const size_t block = slot >= 0 ? static_cast<size_t>(slot / p.block_size) : 0;
  const int offset = slot >= 0 ? slot % p.block_size : 0;
  const int q_pairs = p.num_q_heads * half;
  const int rotations = q_pairs + (slot >= 0 ? p.num_kv_heads * half : 0);
  for (int idx = threadIdx.x; idx < rotations; idx += blockDim.x) {
    const __half* src;
    __half* dst;
    int i;
    if (idx < q_pairs) {
      const int h = idx / half;
      i = idx - h * half;
      src = p.q + static_cast<size_t>(t) * p.ldq + h * p.head_dim;
      dst = p.q_out + (static_cast<size_t>(t) * p.num_q_heads + h) * p.head_dim;
    } else {
      const int j = idx - q_pairs, h = j / half;
      i = j - h * half;
      src = p.k + static_cast<size_t>(t) * p.ldk + h * p.head_dim;
      dst = p.k_cache + ((block * p.num_kv_heads + h) * p.block_size + offset) * p.head_dim;
    }
    float s, c;
    sincosf(pos * p.inv_freq[i], &s, &c);
    const float a = __half2float(src[i]), b = __half2float(src[i + half]);
    dst[i] = __float2half(a * c - b * s);
    dst[i + half] = __float2half(b * c + a * s);
  }
  if (slot < 0) return;
  const int vecs = p.head_dim / 8;
  for (int idx = threadIdx.x; idx < p.num_kv_heads * vecs; idx += blockDim.x) {
    const int h = idx / vecs, i = idx - h * vecs;
    const uint4* src = reinterpret_cast<const uint4*>(p.v + static_cast<size_t>(t) * p.ldv + h * p.head_dim) + i;
    uint4* dst = reinterpret_cast<uint4*>(p.v_cache + ((block * p.num_kv_heads + h) * p.block_size + offset) * p.head_dim) + i;
    *dst = *src;
  }
}

}  // namespace

cudaError_t rope_and_write_kv(const RopeKvParams& p, cudaStream_t stream) {
  if (p.tokens <= 0) return cudaSuccess;
  if (p.head_dim % 8 != 0 || p.ldq % 8 != 0 || p.ldk % 8 != 0 || p.ldv % 8 != 0) return cudaErrorInvalidValue;
  rope_write_kv_kernel<<<p.tokens, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
