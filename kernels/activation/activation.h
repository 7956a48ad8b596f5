#pragma once
// Elementwise ops of the MLP and the projections.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// out[r, i] = silu(gate[r, i]) * up[r, i] for r < rows, i < dim (fp32 math,
// one rounding). gate and up rows are `ld` halves apart (dim when they are
// their own matrices, 2 dim when they are the halves of one fused product);
// out is [rows, dim].
cudaError_t silu_and_mul(const __half* gate, const __half* up, int ld, __half* out, int rows, int dim,
                         cudaStream_t stream);

// y[r, n] += bias[n] for r < rows, n < cols.
cudaError_t add_bias(__half* y, const __half* bias, int rows, int cols, cudaStream_t stream);

}  // namespace nibble::kernels
