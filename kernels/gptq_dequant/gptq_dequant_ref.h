#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

// Scalar reference of kernels/gptq_dequant (fp16 as raw uint16_t); g_idx may be null.
void gptq_dequantize(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, const int32_t* g_idx,
                     int in_features, int out_features, int bits, int group_size, bool zero_plus_one, uint16_t* w);

}  // namespace nibble::kernels::ref
