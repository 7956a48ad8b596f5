#include "activation/activation.h"

#include <algorithm>
#include <cstdint>

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
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
    o_row[i] = silu_mul_one(g_row[i], u_row[i]);
}

// The same for dim and ld multiples of 8 and 16-byte aligned rows: 16-byte loads
// and stores, 8 values a thread (a 2,048-token prefill's activation is 175 MB of
// traffic: scalar 2-byte accesses left it far from copy bandwidth). Same math and
// rounding as the scalar kernel, so the results are identical.
__global__ void silu_and_mul_vec8_kernel(const __half* __restrict__ gate, const __half* __restrict__ up, int ld,
                                         __half* __restrict__ out, int dim) {
  const size_t row = blockIdx.y;
  const uint4* g_row = reinterpret_cast<const uint4*>(gate + row * ld);
  const uint4* u_row = reinterpret_cast<const uint4*>(up + row * ld);
  uint4* o_row = reinterpret_cast<uint4*>(out + row * dim);
  const int vecs = dim / 8;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vecs; i += gridDim.x * blockDim.x) {
    const uint4 g = g_row[i], u = u_row[i];
    const __half* gh = reinterpret_cast<const __half*>(&g);
    const __half* uh = reinterpret_cast<const __half*>(&u);
    uint4 o;
    __half* oh = reinterpret_cast<__half*>(&o);
#pragma unroll
    for (int j = 0; j < 8; ++j) oh[j] = silu_mul_one(gh[j], uh[j]);
    o_row[i] = o;
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
  const auto aligned16 = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vec8 = dim % 8 == 0 && ld % 8 == 0 && aligned16(gate) && aligned16(up) && aligned16(out);
  const int per_row = vec8 ? dim / 8 : dim;  // threads' items in a row
  const unsigned column_blocks = static_cast<unsigned>(std::min<size_t>((static_cast<size_t>(per_row) + 255) / 256, 64));
  constexpr int kMaxGridRows = 65535;
  for (int r0 = 0; r0 < rows; r0 += kMaxGridRows) {
    const int count = std::min(kMaxGridRows, rows - r0);
    const size_t in = static_cast<size_t>(r0) * ld, o = static_cast<size_t>(r0) * dim;
    const dim3 grid(column_blocks, static_cast<unsigned>(count));
    if (vec8)
      silu_and_mul_vec8_kernel<<<grid, 256, 0, stream>>>(gate + in, up + in, ld, out + o, dim);
    else
      silu_and_mul_kernel<<<grid, 256, 0, stream>>>(gate + in, up + in, ld, out + o, dim);
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
