#include "activation/activation.h"
#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

__global__ void silu_and_mul_kernel(const __half* __restrict__ gate, const __half* __restrict__ up, int ld,
                                    __half* __restrict__ out, size_t n, int dim) {
  let_next_kernel_start();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t in = i / dim * ld + i % dim;
    const float g = __half2float(gate[in]);
    out[i] = __float2half(g / (1.0f + __expf(-g)) * __half2float(up[in]));
  }
}

__global__ void add_bias_kernel(__half* __restrict__ y, const __half* __restrict__ bias, size_t n, int cols) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    y[i] = __float2half(__half2float(y[i]) + __half2float(bias[i % cols]));
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 4096 ? blocks : 4096);
}

}  // namespace

cudaError_t silu_and_mul(const __half* gate, const __half* up, int ld, __half* out, int rows, int dim,
                         cudaStream_t stream) {
  const size_t n = static_cast<size_t>(rows) * dim;
  if (n == 0) return cudaSuccess;
  if (ld < dim) return cudaErrorInvalidValue;
  silu_and_mul_kernel<<<grid_for(n), 256, 0, stream>>>(gate, up, ld, out, n, dim);
  return cudaGetLastError();
}

cudaError_t add_bias(__half* y, const __half* bias, int rows, int cols, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(rows) * cols;
  if (n == 0) return cudaSuccess;
  add_bias_kernel<<<grid_for(n), 256, 0, stream>>>(y, bias, n, cols);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
