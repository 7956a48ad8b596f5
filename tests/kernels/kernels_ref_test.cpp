// CPU-only checks of the kernel references (these run in CI without a GPU).
#include <gtest/gtest.h>

#include <algorithm>
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

TEST(AttentionPlan, ItemKeysAreBoundedByTheWindow) {
  EXPECT_EQ(kernels::attention_item_keys(4096, 0, 16), 4096);
  EXPECT_EQ(kernels::attention_item_keys(4096, 100, 16), 115);  // the item's first query sees 100, its last 15 more
  EXPECT_EQ(kernels::attention_item_keys(4096, 100, 1), 100);
  EXPECT_EQ(kernels::attention_item_keys(50, 100, 16), 50);
  EXPECT_EQ(kernels::attention_num_splits(1, 8, kernels::attention_item_keys(32768, 64, 1), 132), 2);
}

// The decode kernel's splits: none while the context fits kDecodeNoSplitKeys
// keys, then one per kDecodeKeysPerStep keys up to about two blocks per SM,
// and never more than max_splits. Where the kernel runs clusters (fewer than
// ~66 blocks) those blocks are the cluster's, and a split waits until a
// cluster block would walk more than kDecodeClusterBlockKeys keys.
TEST(AttentionPlan, DecodeSplitsGrowWithTheContextUntilTheGpuIsFull) {
  constexpr int kNone = kernels::kDecodeNoSplitKeys, kStep = kernels::kDecodeKeysPerStep;
  constexpr int kBlockKeys = kernels::kDecodeClusterBlockKeys;
  // Batch 16-32 (128-256 blocks): no clusters, one split per step up to two blocks per SM.
  EXPECT_EQ(kernels::decode_attention_num_splits(16, 8, kNone, 132), 1);
  EXPECT_EQ(kernels::decode_attention_num_splits(16, 8, kNone + 1, 132), (kNone + kStep) / kStep);  // 3 x 128 >= 2 x 132
  EXPECT_EQ(kernels::decode_attention_num_splits(32, 8, 2048, 132), 2);
  EXPECT_EQ(kernels::decode_attention_num_splits(16, 8, 1 << 20, 132, 2), 2);  // max_splits
  EXPECT_EQ(kernels::decode_attention_num_splits(128, 8, 1 << 20, 132), 1);     // the batch fills the GPU
  // Batch 1 (8 blocks, clusters of 8): a split per kBlockKeys keys of each cluster block.
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, 1, 132), 1);
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, kNone + 1, 132), 1);
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, 8 * kBlockKeys, 132), 1);
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, 8 * kBlockKeys + 1, 132), 2);
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, 1 << 20, 132), 4);       // 4 x 8 x 8 blocks: two per SM
  EXPECT_EQ(kernels::decode_attention_num_splits(1, 8, 1 << 20, 132, 3), 3);
  // Batch 8 (64 blocks, clusters of 2).
  EXPECT_EQ(kernels::decode_attention_num_splits(8, 8, 2048, 132), 2);
  EXPECT_EQ(kernels::decode_attention_num_splits(8, 8, 1 << 20, 132), 2);
  EXPECT_EQ(kernels::decode_attention_num_splits(0, 8, 4096, 132), 1);
}

// Clusters double while the blocks fit about one per SM, up to the portable 8,
// and shrink where a split count would make them more than ~4 blocks per SM.
TEST(AttentionPlan, DecodeClustersFillTheGpu) {
  EXPECT_EQ(kernels::decode_attention_cluster(8, 132), 8);
  EXPECT_EQ(kernels::decode_attention_cluster(8, 132, 1, 16), 16);
  EXPECT_EQ(kernels::decode_attention_cluster(1, 132), 8);
  EXPECT_EQ(kernels::decode_attention_cluster(32, 132), 4);
  EXPECT_EQ(kernels::decode_attention_cluster(64, 132), 2);
  EXPECT_EQ(kernels::decode_attention_cluster(66, 132), 2);
  EXPECT_EQ(kernels::decode_attention_cluster(67, 132), 1);
  EXPECT_EQ(kernels::decode_attention_cluster(128, 132), 1);
  EXPECT_EQ(kernels::decode_attention_cluster(0, 132), 1);
  // The planner's split counts keep the size; a caller's far larger ones shrink it.
  EXPECT_EQ(kernels::decode_attention_cluster(8, 132, kernels::decode_attention_num_splits(1, 8, 1 << 20, 132)), 8);
  EXPECT_EQ(kernels::decode_attention_cluster(64, 132, kernels::decode_attention_num_splits(8, 8, 1 << 20, 132)), 2);
  EXPECT_EQ(kernels::decode_attention_cluster(8, 132, 32), 2);   // 8 x 32 x 2 = 512 <= 4 x 132
  EXPECT_EQ(kernels::decode_attention_cluster(8, 132, 128), 1);
}

// A random paged cache for the reference tests: one sequence of `len` keys on a
// shuffled block table, queries for its last q_len positions.
struct RefCase {
  int heads = 4, kv_heads = 2, dim = 8, block_size = 4;
  int len = 0, q_len = 0;
  std::vector<uint16_t> q, k, v;
  std::vector<int32_t> qs, lens, indptr, indices;
  float scale = 0.35f;

  RefCase(int len_, int q_len_, uint32_t seed) : len(len_), q_len(q_len_) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1, 1);
    const int blocks = (len + block_size - 1) / block_size + 3;
    q.resize(static_cast<size_t>(q_len) * heads * dim);
    k.resize(static_cast<size_t>(blocks) * kv_heads * block_size * dim);
    v.resize(k.size());
    for (auto& x : q) x = float_to_fp16(u(rng));
    for (auto& x : k) x = float_to_fp16(u(rng));
    for (auto& x : v) x = float_to_fp16(u(rng));
    std::vector<int32_t> pool(blocks);
    for (int b = 0; b < blocks; ++b) pool[b] = b;
    std::shuffle(pool.begin(), pool.end(), rng);
    indices.assign(pool.begin(), pool.begin() + (len + block_size - 1) / block_size);
    qs = {0, q_len};
    lens = {len};
    indptr = {0, static_cast<int32_t>(indices.size())};
  }
  size_t row(int pos, int kvh) const {
    return ((static_cast<size_t>(indices[pos / block_size]) * kv_heads + kvh) * block_size + pos % block_size) * dim;
  }
  std::vector<uint16_t> attend(int window) const {
    std::vector<uint16_t> out(q.size());
    kernels::ref::paged_attention(q.data(), k.data(), v.data(), out.data(), qs.data(), lens.data(), indptr.data(),
                                  indices.data(), 1, heads, kv_heads, dim, block_size, scale, window);
    return out;
  }
};

// A one-key window: each query sees only its own key, so the output is its V row.
TEST(AttentionRef, WindowOfOneReturnsOwnValue) {
  const RefCase c(23, 6, 3);
  const auto out = c.attend(1);
  for (int i = 0; i < c.q_len; ++i)
    for (int h = 0; h < c.heads; ++h) {
      const size_t vr = c.row(c.len - c.q_len + i, h / (c.heads / c.kv_heads));
      for (int d = 0; d < c.dim; ++d) EXPECT_EQ(out[(i * c.heads + h) * c.dim + d], c.v[vr + d]) << i << " " << h;
    }
}

// A window at least as long as every query's context changes nothing.
TEST(AttentionRef, WindowCoveringTheContextIsPlainCausal) {
  const RefCase c(37, 9, 4);
  EXPECT_EQ(c.attend(37), c.attend(0));
  EXPECT_EQ(c.attend(1000), c.attend(0));
  EXPECT_NE(c.attend(36), c.attend(0));  // the last query loses key 0
}

// Each query of a chunk deep into a sequence (its own window start each) equals
// plain attention of that query over a copy of just its window's keys; keys no
// query sees are NaN, so reading one would show.
TEST(AttentionRef, WindowEqualsAttentionOverTheWindowOnly) {
  const int window = 7;
  RefCase c(50, 12, 5);
  const uint16_t nan = 0x7e00;
  for (int pos = 0; pos < c.len - c.q_len + 1 - window; ++pos)
    for (int h = 0; h < c.kv_heads; ++h) {
      std::fill_n(c.k.begin() + c.row(pos, h), c.dim, nan);
      std::fill_n(c.v.begin() + c.row(pos, h), c.dim, nan);
    }
  const auto out = c.attend(window);
  for (int i = 0; i < c.q_len; ++i) {
    const int pos = c.len - c.q_len + i, first = std::max(0, pos + 1 - window);
    // The window's keys [first, pos] copied into a fresh cache as one sequence of one query.
    RefCase w(pos + 1 - first, 1, 6);
    for (int j = first; j <= pos; ++j)
      for (int h = 0; h < c.kv_heads; ++h) {
        std::copy_n(c.k.begin() + c.row(j, h), c.dim, w.k.begin() + w.row(j - first, h));
        std::copy_n(c.v.begin() + c.row(j, h), c.dim, w.v.begin() + w.row(j - first, h));
      }
    std::copy_n(c.q.begin() + static_cast<size_t>(i) * c.heads * c.dim, c.heads * c.dim, w.q.begin());
    const auto want = w.attend(0);
    for (size_t e = 0; e < want.size(); ++e) {
      EXPECT_TRUE(std::isfinite(fp16_to_float(out[i * c.heads * c.dim + e])));
      EXPECT_EQ(out[i * c.heads * c.dim + e], want[e]) << "query " << i << " element " << e;
    }
  }
}

}  // namespace
}  // namespace nibble
