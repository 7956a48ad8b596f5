#pragma once
#include <cstdint>

namespace nibble::kernels::ref {

// logits[m, v] = sum_k x[m, k] * w[v, k] (fp16 inputs as raw uint16_t, fp64 sums).
void lm_head_logits(const uint16_t* x, const uint16_t* w, float* logits, int rows, int hidden, int vocab);

}  // namespace nibble::kernels::ref
