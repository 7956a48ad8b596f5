#include "kv_cache/kv_cache.h"

#include <algorithm>

namespace nibble::kernels {
namespace {

// One block per token. Thread t takes rotation index i = t % (head_dim / 2)
// and heads t / (head_dim / 2), + heads_per_pass, ...: the angle's sine and
// cosine are computed once per (token, i), not once per head. Then the
// 16-byte pieces of v.
__global__ void rope_write_kv_kernel(RopeKvParams p) {
  const int t = blockIdx.x;
  const int half = p.head_dim / 2;
  const int slot = p.slot_mapping[t];
  const size_t block = slot >= 0 ? static_cast<size_t>(slot / p.block_size) : 0;
  const int offset = slot >= 0 ? slot % p.block_size : 0;
  const int heads = p.num_q_heads + (slot >= 0 ? p.num_kv_heads : 0);
  const int heads_per_pass = blockDim.x / half;  // blockDim.x is a multiple of half (launch)
  const int i = threadIdx.x % half;
  float s, c;
  sincosf(static_cast<float>(p.positions[t]) * p.inv_freq[i], &s, &c);
  for (int h = threadIdx.x / half; h < heads; h += heads_per_pass) {
    const __half* src;
    __half* dst;
    if (h < p.num_q_heads) {
      src = p.q + static_cast<size_t>(t) * p.ldq + h * p.head_dim;
      dst = p.q_out + (static_cast<size_t>(t) * p.num_q_heads + h) * p.head_dim;
    } else {
      const int kh = h - p.num_q_heads;
      src = p.k + static_cast<size_t>(t) * p.ldk + kh * p.head_dim;
      dst = p.k_cache + ((block * p.num_kv_heads + kh) * p.block_size + offset) * p.head_dim;
    }
    const float a = __half2float(src[i]), b = __half2float(src[i + half]);
    dst[i] = __float2half(a * c - b * s);
    dst[i + half] = __float2half(b * c + a * s);
  }
  if (slot < 0) return;
  const int vecs = p.head_dim / 8;
  for (int idx = threadIdx.x; idx < p.num_kv_heads * vecs; idx += blockDim.x) {
    const int h = idx / vecs, v = idx - h * vecs;
    const uint4* src = reinterpret_cast<const uint4*>(p.v + static_cast<size_t>(t) * p.ldv + h * p.head_dim) + v;
    uint4* dst = reinterpret_cast<uint4*>(p.v_cache + ((block * p.num_kv_heads + h) * p.block_size + offset) * p.head_dim) + v;
    *dst = *src;
  }
}

}  // namespace

cudaError_t rope_and_write_kv(const RopeKvParams& p, cudaStream_t stream) {
  if (p.tokens <= 0) return cudaSuccess;
  if (p.head_dim % 8 != 0 || p.ldq % 8 != 0 || p.ldk % 8 != 0 || p.ldv % 8 != 0) return cudaErrorInvalidValue;
  // A whole number of rotation rows (head_dim / 2 threads each), about 256 threads.
  const int half = p.head_dim / 2;
  const int threads = half * std::max(1, 256 / half);
  rope_write_kv_kernel<<<p.tokens, threads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
