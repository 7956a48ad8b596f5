#include <gtest/gtest.h>

#include "stats.h"

using namespace nibble::serve_bench;

// Expected values are numpy.percentile's (linear interpolation).
TEST(Stats, PercentilesInterpolateLikeNumpy) {
  const std::vector<double> v = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 5.5);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 9.1);
  EXPECT_NEAR(percentile(v, 99), 9.91, 1e-12);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 10);
}

TEST(Stats, SummaryOfOneAndOfNone) {
  const Summary one = summarize({4.5});
  EXPECT_EQ(one.count, 1u);
  EXPECT_DOUBLE_EQ(one.mean, 4.5);
  EXPECT_DOUBLE_EQ(one.p99, 4.5);
  EXPECT_DOUBLE_EQ(one.max, 4.5);
  const Summary none = summarize({});
  EXPECT_EQ(none.count, 0u);
  EXPECT_DOUBLE_EQ(none.p50, 0);
}

TEST(Stats, SummaryMeanAndMax) {
  const Summary s = summarize({1, 2, 3, 100});
  EXPECT_DOUBLE_EQ(s.mean, 26.5);
  EXPECT_DOUBLE_EQ(s.max, 100);
  EXPECT_DOUBLE_EQ(s.p50, 2.5);
}
