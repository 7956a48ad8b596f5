#pragma once
// Scalar CPU reference of kernels/norm/rmsnorm.h (fp16 values as raw uint16_t).
#include <cstdint>

namespace nibble::kernels::ref {

void add_rmsnorm(const uint16_t* delta, float* residual, const uint16_t* weight, uint16_t* out, int rows, int dim,
                 float eps);

}  // namespace nibble::kernels::ref
