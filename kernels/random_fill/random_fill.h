#pragma once
// Deterministic random fills on the GPU, for dummy weights (--load-format dummy)
// and tests: element i depends only on (seed, i), so a fill is reproducible.
#include <cstddef>
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

// p[i] = uniformly random 32-bit word.
cudaError_t fill_random_bits(uint32_t* p, size_t n, uint64_t seed, cudaStream_t stream);
// p[i] = fp16(offset + scale * u), u uniform in [-1, 1).
cudaError_t fill_random_half(__half* p, size_t n, uint64_t seed, float scale, float offset, cudaStream_t stream);
// p[i] = value.
cudaError_t fill_u32(uint32_t* p, size_t n, uint32_t value, cudaStream_t stream);

}  // namespace nibble::kernels
