#include "common/device_utils.cuh"
#include "norm/rmsnorm.h"

#include <cstdint>

namespace nibble::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) add_rmsnorm_kernel(const __half* __restrict__ delta,
                                                               float* __restrict__ residual,
                                                               const __half* __restrict__ weight,
                                                               __half* __restrict__ out, int dim, float eps) {
  __shared__ float scratch[32];
  wait_for_previous_grid();
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

// The same for dim a multiple of 4 up to 8192: each thread loads its V <= 8
// groups of 4 (residual, delta and weight) at once and keeps them in registers,
// so a row costs one round of loads, the reduction and one round of stores (a
// batch-1 decode step runs this between every two products).
template <int V>
__global__ void __launch_bounds__(kThreads) add_rmsnorm_vec_kernel(const __half* __restrict__ delta,
                                                                   float* __restrict__ residual,
                                                                   const __half* __restrict__ weight,
                                                                   __half* __restrict__ out, int dim, float eps) {
  __shared__ float scratch[32];
  const size_t row = blockIdx.x;
  float4* x = reinterpret_cast<float4*>(residual + row * dim);
  const uint2* d = delta ? reinterpret_cast<const uint2*>(delta + row * dim) : nullptr;
  const uint2* w = reinterpret_cast<const uint2*>(weight);
  const int n4 = dim / 4;
  float4 v[V];
  uint2 dv[V], wv[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < n4) wv[j] = w[i];  // constant: loaded before the wait
  }
  wait_for_previous_grid();
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < n4) {
      v[j] = x[i];
      dv[j] = d ? d[i] : make_uint2(0, 0);
    }
  }
  float sum_sq = 0.0f;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i >= n4) continue;
    if (d) {
      const float2 lo = __half22float2(*reinterpret_cast<const __half2*>(&dv[j].x));
      const float2 hi = __half22float2(*reinterpret_cast<const __half2*>(&dv[j].y));
      v[j].x += lo.x, v[j].y += lo.y, v[j].z += hi.x, v[j].w += hi.y;
      x[i] = v[j];
    }
    sum_sq += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
  }
  const float inv = rsqrtf(block_sum(sum_sq, scratch) / dim + eps);
  uint2* o = reinterpret_cast<uint2*>(out + row * dim);
#pragma unroll
  for (int j = 0; j < V; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i >= n4) continue;
    const float2 wlo = __half22float2(*reinterpret_cast<const __half2*>(&wv[j].x));
    const float2 whi = __half22float2(*reinterpret_cast<const __half2*>(&wv[j].y));
    // Rounded like the scalar kernel: x * inv * w in fp32, then once to fp16.
    const __half2 lo = __halves2half2(__float2half(v[j].x * inv * wlo.x), __float2half(v[j].y * inv * wlo.y));
    const __half2 hi = __halves2half2(__float2half(v[j].z * inv * whi.x), __float2half(v[j].w * inv * whi.y));
    o[i] = make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
  }
}

}  // namespace

cudaError_t add_rmsnorm(const __half* delta, float* residual, const __half* weight, __half* out, int rows, int dim,
                        float eps, cudaStream_t stream, bool programmatic) {
  if (rows <= 0) return cudaSuccess;
  const auto aligned = [](const void* p, uintptr_t b) { return reinterpret_cast<uintptr_t>(p) % b == 0; };
  const int per_thread = (dim / 4 + kThreads - 1) / kThreads;
  const bool vec = dim % 4 == 0 && per_thread <= 8 && aligned(residual, 16) && aligned(weight, 8) &&
                   aligned(out, 8) && (!delta || aligned(delta, 8));
  auto kernel = add_rmsnorm_kernel;
  if (vec)
    kernel = per_thread <= 1   ? add_rmsnorm_vec_kernel<1>
             : per_thread <= 2 ? add_rmsnorm_vec_kernel<2>
             : per_thread <= 4 ? add_rmsnorm_vec_kernel<4>
                               : add_rmsnorm_vec_kernel<8>;
  return launch_maybe_programmatic(kernel, dim3(rows), dim3(kThreads), 0, stream, programmatic, delta, residual,
                                   weight, out, dim, eps);
}

}  // namespace nibble::kernels
