#include "rope/rope_ref.h"

#include <cmath>
#include <numbers>

#include "nibble/core/half.h"

namespace nibble::kernels::ref {

std::vector<float> rope_inv_freq(int head_dim, double theta, const RopeScaling& scaling) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // transformers computes base ** (arange(0, dim, 2).float() / dim) in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    double f = 1.0 / std::pow(theta, static_cast<double>(exponent));
    switch (scaling.type) {
      case RopeScaling::Type::None:
        break;
      case RopeScaling::Type::Linear:
        f /= scaling.factor;
        break;
      case RopeScaling::Type::Llama3: {
        const double old_len = scaling.original_max_position_embeddings;
        const double low_freq_wavelen = old_len / scaling.low_freq_factor;
        const double high_freq_wavelen = old_len / scaling.high_freq_factor;
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen > low_freq_wavelen) {
          f /= scaling.factor;
        } else if (wavelen >= high_freq_wavelen) {  // medium band: smooth between the two
          const double smooth =
              (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
          f = (1.0 - smooth) * f / scaling.factor + smooth * f;
        }
        break;
      }
    }
    inv_freq[i] = static_cast<float>(f);
  }
  return inv_freq;
}

namespace {

void rotate(uint16_t* x, float position, const float* inv_freq, int head_dim) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position * inv_freq[i]);
    const double c = std::cos(angle), s = std::sin(angle);
    const double a = fp16_to_float(x[i]), b = fp16_to_float(x[i + half]);
    x[i] = float_to_fp16(static_cast<float>(a * c - b * s));
    x[i + half] = float_to_fp16(static_cast<float>(b * c + a * s));
  }
}

}  // namespace

void apply_rope(uint16_t* q, uint16_t* k, const int32_t* positions, const float* inv_freq, int tokens, int num_q_heads,
                int num_k_heads, int head_dim) {
  for (int t = 0; t < tokens; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int h = 0; h < num_q_heads; ++h)
      rotate(q + (static_cast<size_t>(t) * num_q_heads + h) * head_dim, pos, inv_freq, head_dim);
    for (int h = 0; h < num_k_heads; ++h)
      rotate(k + (static_cast<size_t>(t) * num_k_heads + h) * head_dim, pos, inv_freq, head_dim);
  }
}

}  // namespace nibble::kernels::ref
