#include "nibble/engine/rope.h"

#include <cmath>
#include <numbers>

#include "nibble/core/error.h"

namespace nibble {

namespace {

// transformers' _compute_llama3_parameters, step for step in fp32 (the tensor
// math there runs in fp32 with Python-float scalars).
void apply_llama3_scaling(std::vector<float>& inv_freq, const RopeScaling& s) {
  const float factor = static_cast<float>(s.factor);
  const float low_freq_factor = static_cast<float>(s.low_freq_factor);
  const float high_freq_factor = static_cast<float>(s.high_freq_factor);
  const float old_context_len = static_cast<float>(s.original_max_position_embeddings);
  const float low_freq_wavelen = old_context_len / low_freq_factor;
  const float high_freq_wavelen = old_context_len / high_freq_factor;
  for (float& f : inv_freq) {
    const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / f;
    float scaled = wavelen > low_freq_wavelen ? f / factor : f;
    const float smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = medium ? smoothed : scaled;
  }
}

}  // namespace

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  const int dim = config.head_dim;
  NIBBLE_CHECK(dim > 0 && dim % 2 == 0, "rope: head_dim must be positive and even, got " + std::to_string(dim));
  NIBBLE_CHECK(config.rope_theta > 0, "rope: rope_theta must be positive");
  const float base = static_cast<float>(config.rope_theta);
  std::vector<float> inv_freq(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv_freq[i] = 1.0f / std::pow(base, exponent);
  }
  const RopeScaling& s = config.rope_scaling;
  switch (s.type) {
    case RopeScaling::Type::None:
      break;
    case RopeScaling::Type::Linear:
      NIBBLE_CHECK(s.factor > 0, "rope_scaling: linear factor must be positive");
      for (float& f : inv_freq) f /= static_cast<float>(s.factor);
      break;
    case RopeScaling::Type::Llama3:
      NIBBLE_CHECK(s.factor > 0 && s.original_max_position_embeddings > 0 && s.low_freq_factor > 0 &&
                       s.high_freq_factor > s.low_freq_factor,
                   "rope_scaling: llama3 needs factor > 0, original_max_position_embeddings > 0 and "
                   "high_freq_factor > low_freq_factor > 0");
      apply_llama3_scaling(inv_freq, s);
      break;
  }
  return inv_freq;
}

void apply_rope_rotate_half(float* x, int head_dim, const float* cos_table, const float* sin_table) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float x1 = x[i], x2 = x[i + half];
    // q * cos + rotate_half(q) * sin with rotate_half(q) = cat(-q2, q1); the
    // cos/sin of emb = cat(freqs, freqs) repeat over the two halves.
    x[i] = x1 * cos_table[i] - x2 * sin_table[i];
    x[i + half] = x2 * cos_table[i] + x1 * sin_table[i];
  }
}

}  // namespace nibble
