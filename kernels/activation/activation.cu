#include "activation/activation.h"

#include <algorithm>

#include "common/device_utils.cuh"

namespace nibble::kernels {
namespace {

// Row blockIdx.y; columns strided over blockIdx.x (no per-element division).
__global__ void silu_and_mul_kernel(const __half* __restrict__ gate, const __half* __restrict__ up, int ld,
                                    __half* __restrict__ out, int dim) {
  const size_t row = blockIdx.y;
  const __half* g_row = gate + row * ld;
  const __half* u_row = up + row * ld;
  __half* o_row = out + row * dim;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x) {
    const float g = __half2float(g_row[i]);
    o_row[i] = __float2half(g / (1.0f + __expf(-g)) * __half2float(u_row[i]));
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
  const unsigned column_blocks = static_cast<unsigned>(std::min<size_t>((static_cast<size_t>(dim) + 255) / 256, 64));
  constexpr int kMaxGridRows = 65535;
  for (int r0 = 0; r0 < rows; r0 += kMaxGridRows) {
    const int count = std::min(kMaxGridRows, rows - r0);
    const size_t in = static_cast<size_t>(r0) * ld, o = static_cast<size_t>(r0) * dim;
    silu_and_mul_kernel<<<dim3(column_blocks, static_cast<unsigned>(count)), 256, 0, stream>>>(gate + in, up + in, ld,
                                                                                                out + o, dim);
  }
  return cudaGetLastError();
}

cudaError_t add_bias(__half* y, const __half* bias, int rows, int cols, cudaStream_t stream) {
  const size_t n = static_cast<size_t>(rows) * cols;
  if (n == 0) return cudaSuccess;
  add_bias_kernel<<<grid_for(n), 256, 0, stream>>>(y, bias, n, cols);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
