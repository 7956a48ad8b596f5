#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

void silu_and_mul(const uint16_t* gate, const uint16_t* up, uint16_t* out, int rows, int dim);
void add_bias(uint16_t* y, const uint16_t* bias, int rows, int cols);

}  // namespace nibble::kernels::ref
