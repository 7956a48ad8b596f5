#pragma once
// RMSNorm fused with the residual add, over an fp32 residual stream.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// For each of `rows` rows of `dim` values: when delta is not null,
// residual += delta; then out = residual * rsqrt(mean(residual^2) + eps) * weight,
// computed in fp32 and rounded once to fp16.
// programmatic: launched with programmatic dependent launch, so the launch and
// the weight loads overlap the end of the kernel before it (which its blocks
// then wait for), and the kernel after it may launch early the same way.
cudaError_t add_rmsnorm(const __half* delta, float* residual, const __half* weight, __half* out, int rows, int dim,
                        float eps, cudaStream_t stream, bool programmatic = false);

}  // namespace nibble::kernels
