#include "random_fill/random_fill.h"

namespace nibble::kernels {
namespace {

__device__ __forceinline__ uint64_t random_hash(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + index + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

__global__ void fill_bits_kernel(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint32_t>(random_hash(seed, i) >> 32);
}

__global__ void fill_half_kernel(__half* p, size_t n, uint64_t seed, float scale, float offset) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(random_hash(seed, i) >> 40) * (2.0f / 16777216.0f) - 1.0f;
    p[i] = __float2half(offset + scale * u);
  }
}

__global__ void fill_u32_kernel(uint32_t* p, size_t n, uint32_t value) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = value;
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 8192 ? blocks : 8192);
}

}  // namespace

cudaError_t fill_random_bits(uint32_t* p, size_t n, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  fill_bits_kernel<<<grid_for(n), 256, 0, stream>>>(p, n, seed);
  return cudaGetLastError();
}

cudaError_t fill_random_half(__half* p, size_t n, uint64_t seed, float scale, float offset, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  fill_half_kernel<<<grid_for(n), 256, 0, stream>>>(p, n, seed, scale, offset);
  return cudaGetLastError();
}

cudaError_t fill_u32(uint32_t* p, size_t n, uint32_t value, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  fill_u32_kernel<<<grid_for(n), 256, 0, stream>>>(p, n, value);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
