// CPU-only tests (run in CI): the scalar reference against dense math, and the
// kernel-layout repacking of gptq_prepare() decoded by its documented layout.
#include <gtest/gtest.h>

#include <cstdio>

#include "gptq_gemm/gptq_gemm_ref.h"
#include "gptq_gemm/gptq_layout.h"
#include "gptq_test_data.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble::kernels::testing {
namespace {

TEST(GptqReference, MatchesDenseMathForEveryCombination) {
  std::mt19937 rng(1234);
  for (auto spec : all_specs(352, 72)) {
    for (bool with_g_idx : {true, false}) {
      if (!with_g_idx && spec.act_order) continue;
      spec.with_g_idx = with_g_idx;
      const Checkpoint c = make_checkpoint(spec, rng);
      const int64_t M = 3;
      const auto x = random_halves(static_cast<size_t>(M * spec.K), rng);
      const auto bias = random_halves(static_cast<size_t>(spec.N), rng);
      const uint16_t* b = spec.group_size == 64 ? bias.data() : nullptr;
      std::vector<float> y(static_cast<size_t>(M * spec.N));
      gptq_gemm_ref(c.view(), x.data(), M, b, y.data());
      const auto expected = dense_product(c, x, M, b);
      const double err = relative_error(y.data(), expected.data(), y.size());
      EXPECT_LT(err, 1e-6) << spec.name();
    }
  }
}

// Decodes the kernel layout exactly as documented in gptq_layout.h.
int decode_kernel_word(uint32_t word, int bits, int i) {
  const int shift = bits * (i / 2) + 16 * (i % 2);
  return static_cast<int>((word >> shift) & ((1u << bits) - 1));
}

TEST(GptqPrepare, RepacksRowsScalesZerosAndPermutation) {
  std::mt19937 rng(99);
  size_t checked = 0;
  for (auto spec : all_specs(224, 48)) {
    const Checkpoint c = make_checkpoint(spec, rng);
    const GptqPrepared p = gptq_prepare(c.view());
    const int64_t K = spec.K, N = spec.N, gs = spec.group_size <= 0 ? K : spec.group_size;
    ASSERT_EQ(p.groups, c.groups) << spec.name();
    ASSERT_EQ(p.group_rows, gs) << spec.name();
    const bool expect_perm = spec.act_order && spec.group_size > 0;
    ASSERT_EQ(p.act_order(), expect_perm) << spec.name();
    const int pack = 32 / spec.bits;
    for (int64_t r = 0; r < K; ++r) {
      const int64_t src = p.act_order() ? p.perm[static_cast<size_t>(r)] : r;
      ASSERT_EQ(c.group_of(src), r / gs) << spec.name() << " sorted row " << r;
      for (int64_t n = 0; n < N; ++n) {
        const int q = decode_kernel_word(p.qweight[static_cast<size_t>(r / pack * N + n)], spec.bits,
                                         static_cast<int>(r % pack));
        ASSERT_EQ(q, c.q[static_cast<size_t>(src * N + n)]) << spec.name() << " row " << r << " col " << n;
        ++checked;
      }
    }
    for (int64_t i = 0; i < c.groups * N; ++i) {
      ASSERT_EQ(p.scales[static_cast<size_t>(i)], c.scales[static_cast<size_t>(i)]);
      ASSERT_EQ(fp16_to_float(p.zeros[static_cast<size_t>(i)]), -(1024.0f + c.zero[static_cast<size_t>(i)]))
          << spec.name();
    }
  }
  std::printf("checked %zu repacked weights\n", checked);
}

TEST(GptqPrepare, SequentialOrMissingGidxNeedsNoPermutation) {
  std::mt19937 rng(7);
  CheckpointSpec spec;
  spec.K = 256;
  spec.N = 16;
  Checkpoint c = make_checkpoint(spec, rng);
  EXPECT_FALSE(gptq_prepare(c.view()).act_order());
  c.spec.with_g_idx = false;
  EXPECT_FALSE(gptq_prepare(c.view()).act_order());
}

TEST(GptqPrepare, RejectsBadInput) {
  std::mt19937 rng(5);
  CheckpointSpec spec;
  spec.K = 256;
  spec.N = 16;
  spec.group_size = 64;
  Checkpoint c = make_checkpoint(spec, rng);
  auto expect_error = [](GptqCheckpointView v, const char* what) {
    EXPECT_THROW(gptq_prepare(v), nibble::Error) << what;
    EXPECT_THROW(gptq_validate(v), nibble::Error) << what;
  };
  GptqCheckpointView v = c.view();
  v.bits = 3;
  expect_error(v, "bits 3");
  v = c.view();
  v.K = 250;
  expect_error(v, "K not a multiple of 8");
  v = c.view();
  v.N = 12;
  expect_error(v, "N not a multiple of 8");
  v = c.view();
  v.group_size = 48;
  expect_error(v, "group size 48");
  v = c.view();
  v.qzeros = nullptr;
  expect_error(v, "no qzeros");

  std::vector<int32_t> g_idx = c.g_idx;
  g_idx[10] = 4;  // only 4 groups
  v = c.view();
  v.g_idx = g_idx.data();
  expect_error(v, "g_idx out of range");
  g_idx = c.g_idx;
  g_idx[0] = 1;  // group 0 one row short, group 1 one row long
  v.g_idx = g_idx.data();
  expect_error(v, "uneven groups");
  try {
    gptq_prepare(v);
  } catch (const nibble::Error& e) {
    EXPECT_NE(std::string(e.what()).find("group 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nibble::kernels::testing
