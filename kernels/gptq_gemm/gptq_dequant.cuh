#pragma once
// Dequantization kernels of the large-M path (internal header).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace nibble::kernels::detail {

struct DequantParams {
  const uint32_t* qweight;
  const __half* scales;
  const __half* zeros;
  const int32_t* perm;
  int K, N, bits, group_rows;
  int n_begin, n_end;  // columns to write, multiples of 4
  __half* out;         // [K, n_end - n_begin]
};

void launch_dequant(const DequantParams& p, cudaStream_t stream);

// out[m, n] = row[n] for m < M (a bias before a beta = 1 cuBLAS product).
void launch_broadcast_rows(const __half* row, int64_t M, int64_t N, __half* out, cudaStream_t stream);

}  // namespace nibble::kernels::detail
