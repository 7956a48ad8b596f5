#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu_dense.h"
#include "nibble/core/half.h"

namespace nibble {
namespace {

TEST(CpuDense, Fp16RowConversionIsExactForEveryBitPattern) {
  std::vector<uint16_t> all(65536 + 3);  // odd length: the vector loop's tail runs too
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  std::vector<float> out(all.size());
  fp16_to_float_row(all.data(), out.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const float expected = fp16_to_float(all[i]);
    if (std::isnan(expected))
      EXPECT_TRUE(std::isnan(out[i])) << all[i];
    else
      ASSERT_EQ(out[i], expected) << "bits " << all[i];
  }
}

}  // namespace
}  // namespace nibble
