#include "nibble/model/gptq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "nibble/core/error.h"
#include "nibble/core/half.h"

namespace nibble {
namespace {

QuantConfig quant(int bits, bool sym, QuantConfig::Format format, int group_size = 32) {
  QuantConfig q;
  q.quantized = true;
  q.bits = bits;
  q.sym = sym;
  q.format = format;
  q.group_size = group_size;
  return q;
}

// Hand-packed tensors of one small linear, viewed as LinearWeights.
struct HandLinear {
  GptqTensors t;
  LinearWeights view(int in, int out, const QuantConfig& q) { return gptq_view(t, in, out, q); }
};

std::vector<float> dequantize(const LinearWeights& w) {
  std::vector<float> out(static_cast<size_t>(w.in_features) * w.out_features);
  gptq_dequantize_rows(w, 0, w.in_features, out.data());
  return out;
}

struct HandCase {
  int bits;
  bool sym;
  QuantConfig::Format format;
};

class GptqHandComputed : public ::testing::TestWithParam<HandCase> {};

// 4-bit: one int32 per 8 input rows. Column 0 holds 0x76543210 (row k -> q = k),
// column 1 holds 0xFEDCBA98 (row k -> q = 8 + k). 8-bit: one int32 per 4 rows;
// column 0 holds 0xC8806440 (rows: 64, 100, 128, 200), column 1 0x01020304.
TEST_P(GptqHandComputed, MatchesHandComputedValues) {
  const HandCase c = GetParam();
  const QuantConfig q = quant(c.bits, c.sym, c.format);
  const bool v1 = c.format == QuantConfig::Format::Gptq;
  HandLinear h;
  h.t.groups = 1;
  h.t.scales.assign(static_cast<size_t>(c.bits == 4 ? 8 : 4), float_to_fp16(1.0f));
  h.t.scales[0] = float_to_fp16(0.5f);
  h.t.scales[1] = float_to_fp16(0.25f);
  std::vector<std::vector<float>> expected;  // [column][row], columns 0 and 1
  if (c.bits == 4) {
    h.t.qweight.assign(8, 0);
    h.t.qweight[0] = 0x76543210;
    h.t.qweight[1] = static_cast<int32_t>(0xFEDCBA98u);
    // Zeros: sym uses 8 for every column; asym uses 3 (column 0) and 4 (column 1).
    // Format gptq stores zero - 1, gptq_v2 the zero itself.
    if (c.sym) {
      h.t.qzeros = {static_cast<int32_t>(v1 ? 0x77777777u : 0x88888888u)};
      expected = {{-4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5}, {0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75}};
    } else {
      h.t.qzeros = {v1 ? 0x32 : 0x43};
      expected = {{-1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2}, {1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75}};
    }
  } else {
    h.t.qweight.assign(4, 0);
    h.t.qweight[0] = static_cast<int32_t>(0xC8806440u);
    h.t.qweight[1] = 0x01020304;
    if (c.sym) {  // zero 128 everywhere
      h.t.qzeros = {static_cast<int32_t>(v1 ? 0x7F7F7F7Fu : 0x80808080u)};
      expected = {{-32, -14, 0, 36}, {-31, -31.25, -31.5, -31.75}};
    } else {  // zero 100 (column 0) and 2 (column 1)
      h.t.qzeros = {v1 ? 0x0163 : 0x0264};
      expected = {{-18, 0, 14, 50}, {0.5, 0.25, 0, -0.25}};
    }
  }
  const int n = c.bits == 4 ? 8 : 4;
  LinearWeights w = h.view(n, n, q);
  std::vector<float> out = dequantize(w);
  for (int k = 0; k < n; ++k) {
    EXPECT_FLOAT_EQ(out[k * n + 0], expected[0][k]) << "row " << k << " column 0";
    EXPECT_FLOAT_EQ(out[k * n + 1], expected[1][k]) << "row " << k << " column 1";
  }
  // Untouched columns: q = 0 with scale 1, so -zero.
  const float zero2 = c.sym ? static_cast<float>(1 << (c.bits - 1))
                            : (c.bits == 4 ? (v1 ? 1.0f : 0.0f) : (v1 ? 1.0f : 0.0f));
  for (int k = 0; k < n; ++k) EXPECT_FLOAT_EQ(out[k * n + 2], -zero2) << "row " << k;
}

INSTANTIATE_TEST_SUITE_P(AllCombinations, GptqHandComputed,
                         ::testing::Values(HandCase{4, true, QuantConfig::Format::Gptq},
                                           HandCase{4, false, QuantConfig::Format::Gptq},
                                           HandCase{4, true, QuantConfig::Format::GptqV2},
                                           HandCase{4, false, QuantConfig::Format::GptqV2},
                                           HandCase{8, true, QuantConfig::Format::Gptq},
                                           HandCase{8, false, QuantConfig::Format::Gptq},
                                           HandCase{8, true, QuantConfig::Format::GptqV2},
                                           HandCase{8, false, QuantConfig::Format::GptqV2}),
                         [](const auto& info) {
                           return std::to_string(info.param.bits) + "bit_" + (info.param.sym ? "sym_" : "asym_") +
                                  (info.param.format == QuantConfig::Format::Gptq ? "gptq" : "gptq_v2");
                         });

// Act-order: g_idx picks each row's group, whatever its position. Every q is 9
// and every zero 8, so a row dequantizes to exactly its group's scale.
TEST(GptqDequantize, ActOrderUsesGIdxPerRow) {
  const QuantConfig q = quant(4, true, QuantConfig::Format::Gptq, 32);
  const int in = 64, out = 8;
  GptqTensors t;
  t.groups = 2;
  t.qweight.assign(static_cast<size_t>(in / 8) * out, static_cast<int32_t>(0x99999999u));
  t.qzeros.assign(2, 0x77777777);
  t.scales.resize(2 * out);
  for (int n = 0; n < out; ++n) {
    t.scales[n] = float_to_fp16(1.0f + n);          // group 0
    t.scales[out + n] = float_to_fp16(-2.0f - n);   // group 1
  }
  t.g_idx.resize(in);
  for (int k = 0; k < in; ++k) t.g_idx[k] = (k * 7 % 3 == 0) ? 1 : 0;  // scattered, not sequential
  LinearWeights w = gptq_view(t, in, out, q);
  std::vector<float> got = dequantize(w);
  for (int k = 0; k < in; ++k)
    for (int n = 0; n < out; ++n)
      EXPECT_FLOAT_EQ(got[k * out + n], t.g_idx[k] == 0 ? 1.0f + n : -2.0f - n) << k << "," << n;

  // Without g_idx the groups are sequential (rows 0..31 group 0).
  t.g_idx.clear();
  got = dequantize(gptq_view(t, in, out, q));
  for (int k = 0; k < in; ++k) EXPECT_FLOAT_EQ(got[k * out], k < 32 ? 1.0f : -2.0f) << k;
}

TEST(GptqDequantize, RowRangeMatchesFullDequantization) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  const int in = 128, out = 16;
  std::vector<float> w(in * out);
  for (auto& x : w) x = normal(rng);
  const QuantConfig q = quant(4, false, QuantConfig::Format::GptqV2, 32);
  GptqTensors t = gptq_quantize(w.data(), in, out, q);
  LinearWeights view = gptq_view(t, in, out, q);
  std::vector<float> full = dequantize(view);
  std::vector<float> part((45 - 13) * out);
  gptq_dequantize_rows(view, 13, 45, part.data());
  for (size_t i = 0; i < part.size(); ++i) EXPECT_EQ(part[i], full[13 * out + i]);
  EXPECT_THROW(gptq_dequantize_rows(view, 10, in + 1, part.data()), Error);
  EXPECT_THROW(gptq_dequantize_rows(view, 5, 4, part.data()), Error);
}

struct RoundTripCase {
  int bits;
  bool sym;
  QuantConfig::Format format;
  int group_size;
  bool act_order;
};

class GptqRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

// Round-to-nearest: every weight comes back within one quantization step of
// its group (half a step, except where the range is clipped at an edge), and
// the typical error is near step/sqrt(12).
TEST_P(GptqRoundTrip, ErrorWithinQuantizationStep) {
  const RoundTripCase c = GetParam();
  const QuantConfig q = quant(c.bits, c.sym, c.format, c.group_size);
  const int in = 256, out = 64;
  std::mt19937 rng(1234 + c.bits + c.group_size);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(in * out);
  for (auto& x : w) x = normal(rng);
  std::vector<int32_t> g_idx;
  if (c.act_order) {
    const int gs = c.group_size > 0 ? c.group_size : in;
    std::vector<int32_t> perm(in);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    g_idx.resize(in);
    for (int i = 0; i < in; ++i) g_idx[perm[i]] = i / gs;
  }
  GptqTensors t = gptq_quantize(w.data(), in, out, q, g_idx);
  ASSERT_EQ(t.groups, c.group_size > 0 ? in / c.group_size : 1);
  if (c.act_order) {
    EXPECT_EQ(t.g_idx, g_idx);
  }
  std::vector<float> back = dequantize(gptq_view(t, in, out, q));
  double sum_sq_ratio = 0;
  for (int k = 0; k < in; ++k) {
    for (int n = 0; n < out; ++n) {
      const float step = fp16_to_float(t.scales[static_cast<size_t>(t.g_idx[k]) * out + n]);
      ASSERT_GT(step, 0.0f);
      const float err = std::fabs(back[k * out + n] - w[k * out + n]);
      ASSERT_LE(err, step * 1.001f) << "row " << k << " column " << n;
      sum_sq_ratio += (err / step) * (err / step);
    }
  }
  const double rms_in_steps = std::sqrt(sum_sq_ratio / (in * out));
  EXPECT_LT(rms_in_steps, 0.35);  // uniform rounding error has rms 0.289 steps
  EXPECT_GT(rms_in_steps, 0.2);
}

INSTANTIATE_TEST_SUITE_P(
    Combinations, GptqRoundTrip,
    ::testing::Values(RoundTripCase{4, true, QuantConfig::Format::Gptq, 32, false},
                      RoundTripCase{4, false, QuantConfig::Format::Gptq, 64, false},
                      RoundTripCase{4, true, QuantConfig::Format::GptqV2, 128, true},
                      RoundTripCase{4, false, QuantConfig::Format::GptqV2, -1, false},
                      RoundTripCase{4, false, QuantConfig::Format::Gptq, 32, true},
                      RoundTripCase{8, true, QuantConfig::Format::Gptq, 128, false},
                      RoundTripCase{8, false, QuantConfig::Format::Gptq, 32, true},
                      RoundTripCase{8, true, QuantConfig::Format::GptqV2, -1, true},
                      RoundTripCase{8, false, QuantConfig::Format::GptqV2, 64, false}),
    [](const auto& info) {
      const RoundTripCase& c = info.param;
      return std::to_string(c.bits) + "bit_" + (c.sym ? "sym_" : "asym_") +
             (c.format == QuantConfig::Format::Gptq ? "gptq_" : "gptq_v2_") +
             (c.group_size > 0 ? "g" + std::to_string(c.group_size) : std::string("gall")) +
             (c.act_order ? "_actorder" : "");
    });

TEST(GptqQuantize, EightBitIsFinerThanFourBit) {
  const int in = 128, out = 32;
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(in * out);
  for (auto& x : w) x = normal(rng);
  auto rms_error = [&](int bits) {
    const QuantConfig q = quant(bits, true, QuantConfig::Format::Gptq, 32);
    GptqTensors t = gptq_quantize(w.data(), in, out, q);
    std::vector<float> back = dequantize(gptq_view(t, in, out, q));
    double s = 0;
    for (size_t i = 0; i < w.size(); ++i) s += (back[i] - w[i]) * (back[i] - w[i]);
    return std::sqrt(s / w.size());
  };
  const double e4 = rms_error(4), e8 = rms_error(8);
  EXPECT_LT(e4, 0.2);
  EXPECT_LT(e8 * 10, e4);
}

TEST(GptqQuantize, AsymGptqFormatNeverStoresZeroOfZero) {
  // All weights non-negative: the ideal zero point is 0, which format gptq
  // (stored as zero - 1) cannot hold; the stored zero must still round-trip.
  const int in = 32, out = 8;
  std::vector<float> w(in * out);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.01f * static_cast<float>(i % 17);
  const QuantConfig q = quant(4, false, QuantConfig::Format::Gptq, 32);
  GptqTensors t = gptq_quantize(w.data(), in, out, q);
  std::vector<float> back = dequantize(gptq_view(t, in, out, q));
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(back[i], w[i], 0.012f) << i;
}

TEST(GptqQuantize, RejectsBadInput) {
  std::vector<float> w(64 * 8, 0.5f);
  QuantConfig q = quant(3, true, QuantConfig::Format::Gptq);
  EXPECT_THROW(gptq_quantize(w.data(), 64, 8, q), Error);
  q.bits = 4;
  EXPECT_THROW(gptq_quantize(w.data(), 60, 8, q), Error);  // 60 rows do not pack by 8
  std::vector<int32_t> bad_g_idx(64, 5);                    // only 2 groups
  EXPECT_THROW(gptq_quantize(w.data(), 64, 8, q, bad_g_idx), Error);
  std::vector<int32_t> short_g_idx(10, 0);
  EXPECT_THROW(gptq_quantize(w.data(), 64, 8, q, short_g_idx), Error);
  // A constant-zero group still gets a usable (non-zero) scale.
  std::vector<float> zeros(64 * 8, 0.0f);
  GptqTensors t = gptq_quantize(zeros.data(), 64, 8, q);
  std::vector<float> back = dequantize(gptq_view(t, 64, 8, q));
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace nibble
