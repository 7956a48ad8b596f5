#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

void argmax_rows(const float* logits, int32_t* out, int rows, int vocab);

}  // namespace nibble::kernels::ref
