#pragma once
// Greedy sampling on the GPU: the index of each row's largest logit.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace nibble::kernels {

// out[r] = argmax_i logits[r, i]; ties go to the lowest index, NaNs never win.
cudaError_t argmax_rows(const float* logits, int32_t* out, int rows, int vocab, cudaStream_t stream);

}  // namespace nibble::kernels
