#include "nibble/core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

namespace nibble {
namespace {

TEST(Half, Fp16KnownValues) {
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(1e6f), 0x7c00);
  EXPECT_EQ(float_to_fp16(5.960464477539063e-08f), 0x0001);  // smallest subnormal
  EXPECT_FLOAT_EQ(fp16_to_float(0x3555), 0.333251953125f);
  EXPECT_FLOAT_EQ(fp16_to_float(0x0001), 5.960464477539063e-08f);
  EXPECT_TRUE(std::isnan(fp16_to_float(float_to_fp16(NAN))));
}

TEST(Half, Fp16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t v = static_cast<uint16_t>(h);
    float f = fp16_to_float(v);
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_fp16(f), v) << "fp16 bits " << h;
  }
}

TEST(Half, Fp16RoundsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  for (int i = 0; i < 100000; ++i) {
    float f = dist(rng) * (i % 2 ? 1e-4f : 1.0f);
    uint16_t h = float_to_fp16(f);
    float back = fp16_to_float(h);
    if (std::isinf(back)) continue;
    // No other fp16 value is closer.
    float up = fp16_to_float(static_cast<uint16_t>(h + 1));
    float down = fp16_to_float(static_cast<uint16_t>(h - 1));
    EXPECT_LE(std::fabs(back - f), std::fabs(up - f) + 0.0f) << f;
    if ((h & 0x7fff) != 0) EXPECT_LE(std::fabs(back - f), std::fabs(down - f)) << f;
  }
}

TEST(Half, Bf16) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_FLOAT_EQ(bf16_to_float(0x4049), 3.140625f);
  EXPECT_EQ(float_to_bf16(3.14159265f), 0x4049);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(f)) EXPECT_EQ(float_to_bf16(f), h);
  }
}

}  // namespace
}  // namespace nibble
