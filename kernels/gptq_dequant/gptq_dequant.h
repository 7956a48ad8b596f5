#pragma once
// Dequantizes a GPTQ linear layer (AutoGPTQ layout, as stored) to a dense fp16
// [in_features, out_features] matrix: the backend's fallback for any batch size
// (dequantize into a scratch buffer, then one cuBLAS GEMM) until the fused GPTQ
// kernels of kernels/gptq_gemm take over.
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace nibble::kernels {

struct GptqDequantParams {
  const int32_t* qweight = nullptr;  // [in / pack, out], pack = 32 / bits
  const int32_t* qzeros = nullptr;   // [groups, out / pack]
  const __half* scales = nullptr;    // [groups, out]
  const int32_t* g_idx = nullptr;    // [in]; null means sequential groups of group_size
  int in_features = 0;
  int out_features = 0;
  int bits = 4;            // 4 or 8
  int group_size = 128;    // used when g_idx is null; -1 = one group
  bool zero_plus_one = true;  // checkpoint format gptq stores zero - 1
};

// w[k * out + n] = (q[k][n] - zero[g(k)][n]) * scale[g(k)][n].
cudaError_t gptq_dequantize(const GptqDequantParams& p, __half* w, cudaStream_t stream);

}  // namespace nibble::kernels
