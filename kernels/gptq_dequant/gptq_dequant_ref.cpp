#include "gptq_dequant/gptq_dequant_ref.h"

#include <cstddef>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void gptq_dequantize(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, const int32_t* g_idx,
                     int in_features, int out_features, int bits, int group_size, bool zero_plus_one, uint16_t* w) {
  const int pack = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  for (int k = 0; k < in_features; ++k) {
    const int g = g_idx ? g_idx[k] : (group_size > 0 ? k / group_size : 0);
    for (int n = 0; n < out_features; ++n) {
      const uint32_t word = static_cast<uint32_t>(qweight[static_cast<size_t>(k / pack) * out_features + n]);
      const int q = static_cast<int>((word >> (bits * (k % pack))) & mask);
      const uint32_t zword = static_cast<uint32_t>(qzeros[static_cast<size_t>(g) * (out_features / pack) + n / pack]);
      const int zero = static_cast<int>((zword >> (bits * (n % pack))) & mask) + (zero_plus_one ? 1 : 0);
      const float scale = fp16_to_float(scales[static_cast<size_t>(g) * out_features + n]);
      w[static_cast<size_t>(k) * out_features + n] = float_to_fp16(static_cast<float>(q - zero) * scale);
    }
  }
}

}  // namespace nibble::kernels::ref
