#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "nibble/core/error.h"
#include "nibble/engine/rope.h"

namespace nibble {
namespace {

ModelConfig rope_config(int head_dim, double theta) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

TEST(Rope, DefaultInvFreq) {
  auto inv = rope_inv_freq(rope_config(8, 10000.0));
  ASSERT_EQ(inv.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(inv[i], std::pow(10000.0, -2.0 * i / 8), 1e-7);
}

TEST(Rope, LinearScalingDividesByFactor) {
  auto c = rope_config(16, 10000.0);
  auto plain = rope_inv_freq(c);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4.0;
  auto scaled = rope_inv_freq(c);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_FLOAT_EQ(scaled[i], plain[i] / 4.0f);
}

TEST(Rope, Llama3ScalingMatchesTransformersFormula) {
  // Llama 3.1's settings.
  auto c = rope_config(128, 500000.0);
  c.rope_scaling = {RopeScaling::Type::Llama3, 8.0, 1.0, 4.0, 8192};
  auto inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 64u);
  int high = 0, low = 0, medium = 0;
  for (int i = 0; i < 64; ++i) {
    const double f = std::pow(500000.0, -2.0 * i / 128);
    const double wavelen = 2 * std::numbers::pi / f;
    double expected;
    if (wavelen < 8192.0 / 4.0) {
      expected = f, ++high;
    } else if (wavelen > 8192.0 / 1.0) {
      expected = f / 8.0, ++low;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected = (1 - smooth) * f / 8.0 + smooth * f, ++medium;
    }
    EXPECT_NEAR(inv[i] / expected, 1.0, 1e-5) << "index " << i;
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(medium, 0);
}

TEST(Rope, RejectsBadSettings) {
  EXPECT_THROW(rope_inv_freq(rope_config(7, 10000.0)), Error);
  EXPECT_THROW(rope_inv_freq(rope_config(8, 0.0)), Error);
  auto c = rope_config(8, 10000.0);
  c.rope_scaling = {RopeScaling::Type::Llama3, 8.0, 4.0, 1.0, 8192};
  EXPECT_THROW(rope_inv_freq(c), Error);
}

TEST(Rope, RotateHalf) {
  // q * cos + rotate_half(q) * sin, rotate_half([a, b, c, d]) = [-c, -d, a, b].
  float x[4] = {1, 2, 3, 4};
  const float cos_t[2] = {0.5f, -1.0f}, sin_t[2] = {0.25f, 2.0f};
  apply_rope_rotate_half(x, 4, cos_t, sin_t);
  EXPECT_FLOAT_EQ(x[0], 1 * 0.5f - 3 * 0.25f);
  EXPECT_FLOAT_EQ(x[1], 2 * -1.0f - 4 * 2.0f);
  EXPECT_FLOAT_EQ(x[2], 3 * 0.5f + 1 * 0.25f);
  EXPECT_FLOAT_EQ(x[3], 4 * -1.0f + 2 * 2.0f);
}

}  // namespace
}  // namespace nibble
