#pragma once
// CPU side of RoPE: the inverse frequencies (with scaling) the kernel consumes,
// and a scalar reference of the kernel.
#include <cstdint>
#include <vector>

#include "nibble/model/config.h"

namespace nibble::kernels::ref {

// inv_freq[i] = 1 / theta^(2i / head_dim), then scaled as transformers'
// _compute_default_rope_parameters / linear / _compute_llama3_parameters do.
std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling);

void apply_rope(uint16_t* q, uint16_t* k, const int32_t* positions, const float* inv_freq, int tokens, int num_q_heads,
                int num_k_heads, int head_dim);

}  // namespace nibble::kernels::ref
