#include <cfloat>

#include "sampling/argmax.h"

namespace nibble::kernels {
namespace {

constexpr int kThreads = 512;

__device__ __forceinline__ void keep_better(float& best_v, int& best_i, float v, int i) {
  if (v > best_v || (v == best_v && i < best_i)) {
    best_v = v;
    best_i = i;
  }
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits, int32_t* __restrict__ out,
                                                          int vocab) {
  __shared__ float values[kThreads / 32];
  __shared__ int indices[kThreads / 32];
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  float best_v = -FLT_MAX;
  int best_i = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float v = row[i];
    if (v == v) keep_better(best_v, best_i, v, i);  // NaN never wins
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best_v, offset);
    const int i = __shfl_xor_sync(0xffffffffu, best_i, offset);
    keep_better(best_v, best_i, v, i);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    values[warp] = best_v;
    indices[warp] = best_i;
  }
  __syncthreads();
  if (warp == 0) {
    best_v = lane < kThreads / 32 ? values[lane] : -FLT_MAX;
    best_i = lane < kThreads / 32 ? indices[lane] : 0x7fffffff;
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float v = __shfl_xor_sync(0xffffffffu, best_v, offset);
      const int i = __shfl_xor_sync(0xffffffffu, best_i, offset);
      keep_better(best_v, best_i, v, i);
    }
    if (lane == 0) out[blockIdx.x] = best_i == 0x7fffffff ? 0 : best_i;
  }
}

}  // namespace

cudaError_t argmax_rows(const float* logits, int32_t* out, int rows, int vocab, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  argmax_kernel<<<rows, kThreads, 0, stream>>>(logits, out, vocab);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
