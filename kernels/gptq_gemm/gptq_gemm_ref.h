#pragma once
// Scalar fp32 CPU reference of the GPTQ matrix product, straight from the
// checkpoint layout (no repacking), used by the tests of every GPTQ kernel.
#include <cstdint>

#include "gptq_gemm/gptq_layout.h"

namespace nibble::kernels {

// y[m, n] = sum_k x[m, k] * (q[k, n] - zero[g(k), n]) * scale[g(k), n] (+ bias[n]),
// with g(k) = g_idx[k] (or k / group_size without g_idx). x fp16 [M, K], y fp32
// [M, N], bias fp16 [N] or null. Validates the view like gptq_prepare().
void gptq_gemm_ref(const GptqCheckpointView& w, const uint16_t* x, int64_t M, const uint16_t* bias, float* y);

// The dequantized weight W[k, n] in fp32, [K, N] row-major, in checkpoint row order.
void gptq_dequantize_ref(const GptqCheckpointView& w, float* out);

}  // namespace nibble::kernels
