#include "activation/activation_ref.h"

#include <cmath>
#include <cstddef>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void silu_and_mul(const uint16_t* gate, const uint16_t* up, uint16_t* out, int rows, int dim) {
  const size_t n = static_cast<size_t>(rows) * dim;
  for (size_t i = 0; i < n; ++i) {
    const double g = fp16_to_float(gate[i]);
    out[i] = float_to_fp16(static_cast<float>(g / (1.0 + std::exp(-g)) * fp16_to_float(up[i])));
  }
}

void add_bias(uint16_t* y, const uint16_t* bias, int rows, int cols) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      uint16_t& v = y[static_cast<size_t>(r) * cols + c];
      v = float_to_fp16(fp16_to_float(v) + fp16_to_float(bias[c]));
    }
}

}  // namespace nibble::kernels::ref
