// CPU-only checks of the kernel references (these run in CI without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "attention/attention_plan.h"
#include "attention/attention_ref.h"
#include "nibble/core/half.h"
#include "rope/rope_ref.h"

namespace nibble {
namespace {

TEST(RopeInvFreq, DefaultIsThetaPower) {
  auto f = kernels::ref::rope_inv_freq(128, 10000.0, RopeScaling{});
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[32], 1.0 / std::pow(10000.0, 0.5), 1e-7);
}

TEST(RopeInvFreq, LinearDividesByFactor) {
  RopeScaling s;
  s.type = RopeScaling::Type::Linear;
  s.factor = 4.0;
  auto base = kernels::ref::rope_inv_freq(64, 10000.0, RopeScaling{});
  auto f = kernels::ref::rope_inv_freq(64, 10000.0, s);
  for (size_t i = 0; i < f.size(); ++i) EXPECT_FLOAT_EQ(f[i], base[i] / 4.0f);
}

// Llama 3.1 (theta 500000, factor 8, low 1, high 4, original 8192): high
// frequencies unchanged, low frequencies divided by 8, the band between smoothed.
TEST(RopeInvFreq, Llama3BandsFollowTransformers) {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 8192;
  auto base = kernels::ref::rope_inv_freq(128, 500000.0, RopeScaling{});
  auto f = kernels::ref::rope_inv_freq(128, 500000.0, s);
  int high = 0, low = 0, mid = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 8192 / 4.0) {
      EXPECT_FLOAT_EQ(f[i], base[i]);
      ++high;
    } else if (wavelen > 8192 / 1.0) {
      EXPECT_NEAR(f[i], base[i] / 8.0, 1e-12 + 1e-6 * base[i]);
      ++low;
    } else {
      const double smooth = (8192 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(f[i], (1 - smooth) * base[i] / 8 + smooth * base[i], 1e-6 * base[i]);
      EXPECT_LT(f[i], base[i]);
      EXPECT_GT(f[i], base[i] / 8.0);
      ++mid;
    }
  }
  EXPECT_GT(high, 0);
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
}

TEST(AttentionPlan, TilesCoverEveryQuery) {
  std::vector<int32_t> query_start = {0, 77, 78, 78, 141};
  auto w = kernels::plan_attention_work(query_start, 16);
  // 77 -> 5 tiles, 1 -> 1, 0 -> 0, 63 -> 4
  ASSERT_EQ(w.seq.size(), 10u);
  EXPECT_EQ(w.seq[4], 0);
  EXPECT_EQ(w.qoff[4], 64);
  EXPECT_EQ(w.seq[5], 1);
  EXPECT_EQ(w.seq[6], 3);
  EXPECT_EQ(w.qoff[9], 48);
  EXPECT_EQ(kernels::attention_tile_tokens(128, 4), 16);
  EXPECT_EQ(kernels::attention_tile_tokens(256, 8), 2);
  EXPECT_EQ(kernels::attention_num_splits(1, 8, 4096, 132), 32);
  EXPECT_EQ(kernels::attention_num_splits(1, 8, 40, 132), 2);
  EXPECT_EQ(kernels::attention_num_splits(512, 8, 4096, 132), 1);
}

// The reference on a one-token context returns V itself (softmax over one key).
TEST(AttentionRef, SingleKeyReturnsValue) {
  const int heads = 2, kvh = 1, dim = 8, bs = 4;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<uint16_t> q(heads * dim), k(3 * kvh * bs * dim), v(k.size()), out(q.size());
  for (auto& x : q) x = float_to_fp16(u(rng));
  for (auto& x : k) x = float_to_fp16(u(rng));
  for (auto& x : v) x = float_to_fp16(u(rng));
  std::vector<int32_t> qs = {0, 1}, lens = {1}, indptr = {0, 1}, indices = {2};
  kernels::ref::paged_attention(q.data(), k.data(), v.data(), out.data(), qs.data(), lens.data(), indptr.data(),
                                indices.data(), 1, heads, kvh, dim, bs, 0.35f);
  for (int h = 0; h < heads; ++h)
    for (int d = 0; d < dim; ++d) EXPECT_EQ(out[h * dim + d], v[2 * bs * dim + d]);
}

}  // namespace
}  // namespace nibble
