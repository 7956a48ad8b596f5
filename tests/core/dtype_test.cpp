#include "nibble/core/dtype.h"

#include <gtest/gtest.h>

namespace nibble {
namespace {

TEST(DType, ParsesSafetensorsNames) {
  EXPECT_EQ(parse_dtype("F16"), DType::F16);
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_EQ(parse_dtype("I32"), DType::I32);
  EXPECT_FALSE(parse_dtype("F8_E4M3").has_value());
  EXPECT_FALSE(parse_dtype("f16").has_value());
  EXPECT_EQ(dtype_size(DType::F64), 8u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_name(DType::U8), "U8");
}

}  // namespace
}  // namespace nibble
