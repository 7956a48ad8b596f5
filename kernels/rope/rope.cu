#include "rope/rope.h"

namespace nibble::kernels {
namespace {

// One block per token; threads walk (head, i) pairs of q then k.
__global__ void rope_kernel(__half* __restrict__ q, __half* __restrict__ k, const int32_t* __restrict__ positions,
                            const float* __restrict__ inv_freq, int num_q_heads, int num_k_heads, int head_dim) {
  const int t = blockIdx.x;
  const int half = head_dim / 2;
  const float pos = static_cast<float>(positions[t]);
  const int q_pairs = num_q_heads * half;
  const int total = (num_q_heads + num_k_heads) * half;
  for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
    __half* x;
    int i;
    if (idx < q_pairs) {
      x = q + (static_cast<size_t>(t) * num_q_heads + idx / half) * head_dim;
      i = idx % half;
    } else {
      const int j = idx - q_pairs;
      x = k + (static_cast<size_t>(t) * num_k_heads + j / half) * head_dim;
      i = j % half;
    }
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    const float a = __half2float(x[i]), b = __half2float(x[i + half]);
    x[i] = __float2half(a * c - b * s);
    x[i + half] = __float2half(b * c + a * s);
  }
}

}  // namespace

cudaError_t apply_rope(__half* q, __half* k, const int32_t* positions, const float* inv_freq, int tokens,
                       int num_q_heads, int num_k_heads, int head_dim, cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  rope_kernel<<<tokens, 256, 0, stream>>>(q, k, positions, inv_freq, num_q_heads, num_k_heads, head_dim);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
