#include "embedding/embedding.h"

namespace nibble::kernels {
namespace {

__global__ void embedding_kernel(const __half* __restrict__ table, const int32_t* __restrict__ ids,
                                 float* __restrict__ out, int dim) {
  const size_t t = blockIdx.x;
  const __half* row = table + static_cast<size_t>(ids[t]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[t * dim + i] = __half2float(row[i]);
}

__global__ void gather_rows_kernel(const __half* __restrict__ src, const int32_t* __restrict__ indices,
                                   __half* __restrict__ dst, int dim) {
  const size_t r = blockIdx.x;
  const __half* row = src + static_cast<size_t>(indices[r]) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[r * dim + i] = row[i];
}

}  // namespace

cudaError_t embedding_lookup(const __half* table, const int32_t* ids, float* out, int tokens, int dim,
                             cudaStream_t stream) {
  if (tokens <= 0) return cudaSuccess;
  embedding_kernel<<<tokens, 256, 0, stream>>>(table, ids, out, dim);
  return cudaGetLastError();
}

cudaError_t gather_rows(const __half* src, const int32_t* indices, __half* dst, int rows, int dim,
                        cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  gather_rows_kernel<<<rows, 256, 0, stream>>>(src, indices, dst, dim);
  return cudaGetLastError();
}

}  // namespace nibble::kernels
