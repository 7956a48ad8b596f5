#include "norm/rmsnorm_ref.h"

#include <cmath>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

void add_rmsnorm(const uint16_t* delta, float* residual, const uint16_t* weight, uint16_t* out, int rows, int dim,
                 float eps) {
  for (int r = 0; r < rows; ++r) {
    float* x = residual + static_cast<size_t>(r) * dim;
    double sum_sq = 0.0;
    for (int i = 0; i < dim; ++i) {
      if (delta) x[i] += fp16_to_float(delta[static_cast<size_t>(r) * dim + i]);
      sum_sq += static_cast<double>(x[i]) * x[i];
    }
    const double inv = 1.0 / std::sqrt(sum_sq / dim + eps);
    for (int i = 0; i < dim; ++i)
      out[static_cast<size_t>(r) * dim + i] = float_to_fp16(static_cast<float>(x[i] * inv * fp16_to_float(weight[i])));
  }
}

}  // namespace nibble::kernels::ref
