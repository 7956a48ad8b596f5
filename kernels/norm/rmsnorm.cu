#include "common/device_utils.cuh"
#include "norm/rmsnorm.h"

namespace nibble::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) add_rmsnorm_kernel(const __half* __restrict__ delta,
                                                               float* __restrict__ residual,
                                                               const __half* __restrict__ weight,
                                                               __half* __restrict__ out, int dim, float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  float* x = residual + row * dim;
  const __half* d = delta ? delta + row * dim : nullptr;
  float sum_sq = 0.0f;
  for (int i = threadIdx.x; i < dim; i += kThreads) {
    float v = x[i];
    if (d) {
      v += __half2float(d[i]);
      x[i] = v;
    }
    sum_sq += v * v;
  }
  const float inv = rsqrtf(block_sum(sum_sq, scratch) / dim + eps);
  __half* o = out + row * dim;
  for (int i = threadIdx.x; i < dim; i += kThreads) o[i] = __float2half(x[i] * inv * __half2float(weight[i]));
}

}  // namespace

cudaError_t add_rmsnorm(const __half* delta, float* residual, const __half* weight, __half* out, int rows, int dim,
                        float eps, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  add_rmsnorm_kernel<<<rows, kThreads, 0, stream>>>(delta, residual, weight, out, dim, eps);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
