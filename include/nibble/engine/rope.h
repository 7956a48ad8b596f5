#pragma once
// Rotary position embedding parameters as Hugging Face transformers computes
// them (modeling_rope_utils.py): default, linear and llama3 scaling.
#include <vector>

#include "nibble/model/config.h"

namespace nibble {

// inv_freq[i] for i in [0, head_dim / 2), in fp32 as transformers computes it.
std::vector<float> rope_inv_freq(const ModelConfig& config);

// Rotate-half RoPE on one head vector x[head_dim] in place, with cos/sin of
// the position's angles (head_dim / 2 values each).
void apply_rope_rotate_half(float* x, int head_dim, const float* cos_table, const float* sin_table);

}  // namespace nibble
