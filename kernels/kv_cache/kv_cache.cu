#include "kv_cache/kv_cache.h"

#include <algorithm>

namespace nibble::kernels {
namespace {

// One block per token. Thread t takes rotation indices i .. i + 3 (i = 4 (t %
// (head_dim / 8))) and heads t / (head_dim / 8), + heads_per_pass, ...: the
// angles' sines and cosines are computed once per (token, i), not once per
// head, and every head's pairs move as 8-byte pieces, all of a thread's loads
// issued before its stores (the first version's 2-byte loads and stores ran at
// 0.53 of copy bandwidth in a 2,048-token prefill). Then the 16-byte pieces of v.
__global__ void rope_write_kv_kernel(RopeKvParams p) {
  const int t = blockIdx.x;
  const int half = p.head_dim / 2, quarter = half / 4;
  const int slot = p.slot_mapping[t];
  const size_t block = slot >= 0 ? static_cast<size_t>(slot / p.block_size) : 0;
  const int offset = slot >= 0 ? slot % p.block_size : 0;
  const int heads = p.num_q_heads + (slot >= 0 ? p.num_kv_heads : 0);
  const int heads_per_pass = blockDim.x / quarter;  // blockDim.x is a multiple of quarter (launch)
  const int i = 4 * (threadIdx.x % quarter);
  const float pos = static_cast<float>(p.positions[t]);
  float s0, s1, s2, s3, c0, c1, c2, c3;  // scalars: an array's address would put it in local memory
  sincosf(pos * p.inv_freq[i], &s0, &c0);
  sincosf(pos * p.inv_freq[i + 1], &s1, &c1);
  sincosf(pos * p.inv_freq[i + 2], &s2, &c2);
  sincosf(pos * p.inv_freq[i + 3], &s3, &c3);
  const float s[4] = {s0, s1, s2, s3}, c[4] = {c0, c1, c2, c3};
  constexpr int kPasses = 4;  // passes whose loads are in flight together
  for (int h0 = threadIdx.x / quarter; h0 < heads; h0 += kPasses * heads_per_pass) {
    uint2 lo[kPasses], hi[kPasses];
#pragma unroll
    for (int k = 0; k < kPasses; ++k) {
      const int h = h0 + k * heads_per_pass;
      if (h >= heads) continue;
      const __half* src = h < p.num_q_heads ? p.q + static_cast<size_t>(t) * p.ldq + h * p.head_dim
                                            : p.k + static_cast<size_t>(t) * p.ldk + (h - p.num_q_heads) * p.head_dim;
      lo[k] = *reinterpret_cast<const uint2*>(src + i);
      hi[k] = *reinterpret_cast<const uint2*>(src + i + half);
    }
#pragma unroll
    for (int k = 0; k < kPasses; ++k) {
      const int h = h0 + k * heads_per_pass;
      if (h >= heads) continue;
      __half* dst = h < p.num_q_heads
                        ? p.q_out + (static_cast<size_t>(t) * p.num_q_heads + h) * p.head_dim
                        : p.k_cache + ((block * p.num_kv_heads + (h - p.num_q_heads)) * p.block_size + offset) *
                                          p.head_dim;
      const __half* a = reinterpret_cast<const __half*>(&lo[k]);
      const __half* b = reinterpret_cast<const __half*>(&hi[k]);
      uint2 out_lo, out_hi;
      __half* ol = reinterpret_cast<__half*>(&out_lo);
      __half* oh = reinterpret_cast<__half*>(&out_hi);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float fa = __half2float(a[e]), fb = __half2float(b[e]);
        ol[e] = __float2half(fa * c[e] - fb * s[e]);
        oh[e] = __float2half(fb * c[e] + fa * s[e]);
      }
      *reinterpret_cast<uint2*>(dst + i) = out_lo;
      *reinterpret_cast<uint2*>(dst + i + half) = out_hi;
    }
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
  // A whole number of rotation rows (head_dim / 8 threads each), about 256 threads.
  const int quarter = p.head_dim / 8;
  const int threads = quarter * std::max(1, 256 / quarter);
  rope_write_kv_kernel<<<p.tokens, threads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
