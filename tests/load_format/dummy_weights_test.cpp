// Host dummy weights (--load-format dummy on the CPU): checkpoint shapes for a
// config, the same bytes for the same seed, bounded values, refusal of absurd
// sizes and unpackable shapes, and a CPU backend that runs on them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>

#include "../engine/sequence_driver.h"
#include "nibble/core/error.h"
#include "nibble/core/half.h"
#include "nibble/engine/backend_factory.h"
#include "nibble/model/dummy_weights.h"
#include "nibble/model/gptq.h"
#include "nibble/model/weight_names.h"

namespace nibble::test {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.architecture = Architecture::Llama;
  c.architecture_name = "LlamaForCausalLM";
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.vocab_size = 1000;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5;
  return c;
}

std::vector<const TensorView*> all_views(const ModelWeights& w) {
  std::vector<const TensorView*> v{&w.embed_tokens, &w.norm, &w.lm_head.weight};
  for (const LayerWeights& l : w.layers) {
    v.push_back(&l.input_layernorm);
    v.push_back(&l.post_attention_layernorm);
    for (const LinearWeights* lin : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      for (const TensorView* t : {&lin->qweight, &lin->qzeros, &lin->scales, &lin->g_idx, &lin->bias})
        if (t->present()) v.push_back(t);
  }
  return v;
}

std::pair<float, float> half_range(const TensorView& t) {
  const auto* h = static_cast<const uint16_t*>(t.data);
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float f = fp16_to_float(h[i]);
    lo = std::min(lo, f);
    hi = std::max(hi, f);
  }
  return {lo, hi};
}

TEST(DummyWeights, CheckpointShapesForTheConfig) {
  ModelConfig c = small_config();
  auto model = make_dummy_weights(c, "small.json");
  const ModelConfig& run = model->config();
  EXPECT_TRUE(run.quant.quantized);
  EXPECT_EQ(run.quant.bits, 4);
  EXPECT_EQ(run.quant.group_size, 128);
  EXPECT_EQ(model->dir(), "small.json");

  size_t tensors = 0;
  const ModelWeights& w = model->weights();
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.embed_tokens.shape, (std::vector<int64_t>{1000, 128}));
  EXPECT_EQ(w.embed_tokens.dtype, DType::F16);
  EXPECT_FALSE(w.lm_head.quantized);
  EXPECT_EQ(w.lm_head.weight.shape, (std::vector<int64_t>{1000, 128}));
  const LinearWeights& q = w.layers[0].q_proj;
  EXPECT_TRUE(q.quantized);
  EXPECT_EQ(q.qweight.shape, (std::vector<int64_t>{128 / 8, 128}));
  EXPECT_EQ(q.qzeros.shape, (std::vector<int64_t>{1, 128 / 8}));
  EXPECT_EQ(q.scales.shape, (std::vector<int64_t>{1, 128}));
  EXPECT_EQ(q.g_idx.shape, (std::vector<int64_t>{128}));
  const LinearWeights& down = w.layers[1].down_proj;
  EXPECT_EQ(down.qweight.shape, (std::vector<int64_t>{256 / 8, 128}));
  EXPECT_EQ(down.scales.shape, (std::vector<int64_t>{2, 128}));
  const auto* g = static_cast<const int32_t*>(down.g_idx.data);
  EXPECT_EQ(g[0], 0);
  EXPECT_EQ(g[127], 0);
  EXPECT_EQ(g[128], 1);
  EXPECT_EQ(g[255], 1);
  EXPECT_FALSE(w.layers[0].q_proj.bias.present());  // Llama without attention_bias

  uint64_t bytes = 0;
  for (const TensorView* t : all_views(w)) bytes += t->nbytes(), ++tensors;
  EXPECT_EQ(bytes, dummy_weights_bytes(c));
  EXPECT_GT(tensors, 10u);
}

TEST(DummyWeights, ConfigQuantizationAndQwenBiasAndTiedHead) {
  ModelConfig c = small_config();
  c.architecture = Architecture::Qwen2;
  c.architecture_name = "Qwen2ForCausalLM";
  c.tie_word_embeddings = true;
  c.attention_bias = true;  // what parse_model_config sets for Qwen2
  c.quant.quantized = true;
  c.quant.bits = 8;
  c.quant.group_size = 64;
  c.quant.desc_act = true;  // dummy weights are always sequential
  auto model = make_dummy_weights(c, "qwen.json");
  const QuantConfig& q = model->config().quant;
  EXPECT_EQ(q.bits, 8);
  EXPECT_EQ(q.group_size, 64);
  EXPECT_FALSE(q.desc_act);
  const ModelWeights& w = model->weights();
  EXPECT_EQ(w.layers[0].q_proj.qweight.shape, (std::vector<int64_t>{128 / 4, 128}));
  EXPECT_EQ(w.layers[0].q_proj.scales.shape, (std::vector<int64_t>{2, 128}));
  EXPECT_TRUE(w.layers[0].k_proj.bias.present());
  EXPECT_FALSE(w.layers[0].o_proj.bias.present());
  EXPECT_EQ(w.lm_head.weight.data, w.embed_tokens.data);

  // 2- or 3-bit configs fall back to 4-bit group 128.
  c.quant.bits = 3;
  EXPECT_EQ(dummy_weights_quant(c).bits, 4);
  EXPECT_EQ(dummy_weights_quant(c).group_size, 128);
}

TEST(DummyWeights, SameSeedSameBytesOtherSeedOtherBytes) {
  ModelConfig c = small_config();
  auto a = make_dummy_weights(c, "a.json", {.seed = 7});
  auto b = make_dummy_weights(c, "b.json", {.seed = 7});
  auto other = make_dummy_weights(c, "c.json", {.seed = 8});
  auto va = all_views(a->weights()), vb = all_views(b->weights()), vo = all_views(other->weights());
  ASSERT_EQ(va.size(), vb.size());
  size_t differing = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_EQ(va[i]->name, vb[i]->name);
    EXPECT_EQ(std::memcmp(va[i]->data, vb[i]->data, va[i]->nbytes()), 0) << va[i]->name;
    differing += std::memcmp(va[i]->data, vo[i]->data, va[i]->nbytes()) != 0;
  }
  EXPECT_GT(differing, va.size() / 2);  // qweights, scales, embeddings... (not zeros and g_idx)
}

TEST(DummyWeights, ValuesStayInRange) {
  ModelConfig c = small_config();
  auto model = make_dummy_weights(c, "r.json", {.seed = 3});
  const ModelWeights& w = model->weights();
  auto [elo, ehi] = half_range(w.embed_tokens);
  EXPECT_GE(elo, -1.0f);
  EXPECT_LE(ehi, 1.0f);
  EXPECT_LT(elo, -0.9f);  // actually random, not a constant
  auto [nlo, nhi] = half_range(w.layers[1].input_layernorm);
  EXPECT_GE(nlo, 0.9f - 1e-3f);
  EXPECT_LE(nhi, 1.1f + 1e-3f);

  // Every zero is the 4-bit midpoint (stored as zero - 1 = 7), the qweight
  // bits are random, and the dequantized weights have a std near 1/sqrt(in).
  const LinearWeights& gate = w.layers[0].gate_proj;
  const auto* zeros = static_cast<const uint32_t*>(gate.qzeros.data);
  for (int64_t i = 0; i < gate.qzeros.numel(); ++i) ASSERT_EQ(zeros[i], 0x77777777u);
  std::vector<float> dense(static_cast<size_t>(gate.in_features) * gate.out_features);
  gptq_dequantize_rows(gate, 0, gate.in_features, dense.data());
  double sum = 0, sum_sq = 0, max_abs = 0;
  for (float v : dense) sum += v, sum_sq += double(v) * v, max_abs = std::max(max_abs, double(std::fabs(v)));
  const double n = static_cast<double>(dense.size());
  const double mean = sum / n, stddev = std::sqrt(sum_sq / n - mean * mean);
  const double target = 1.0 / std::sqrt(static_cast<double>(gate.in_features));
  EXPECT_NEAR(stddev, target, 0.15 * target);
  // q averages 7.5 against the zero 8: a mean of -0.5 scale (as on the GPU).
  const double scale = 1.0 / (16.0 / std::sqrt(12.0) * std::sqrt(static_cast<double>(gate.in_features)));
  EXPECT_NEAR(mean, -0.5 * scale, 0.1 * scale);
  EXPECT_LT(max_abs, 4.0 * target);
}

TEST(DummyWeights, RefusesAbsurdSizesAndUnpackableShapes) {
  ModelConfig c = small_config();
  try {
    make_dummy_weights(c, "big.json", {.seed = 0, .max_bytes = dummy_weights_bytes(c) - 1});
    FAIL() << "over the limit accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("big.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("host memory"), std::string::npos) << e.what();
  }
  // A 70B-shaped config needs about 40 GB: computed, not allocated.
  ModelConfig huge = small_config();
  huge.hidden_size = 8192;
  huge.intermediate_size = 28672;
  huge.num_hidden_layers = 80;
  huge.num_attention_heads = 64;
  huge.num_key_value_heads = 8;
  huge.head_dim = 128;
  huge.vocab_size = 128256;
  EXPECT_GT(dummy_weights_bytes(huge), 35ull << 30);
  EXPECT_LT(dummy_weights_bytes(huge), 45ull << 30);
  EXPECT_THROW(make_dummy_weights(huge, "70b.json", {.seed = 0, .max_bytes = 1ull << 30}), Error);
  EXPECT_GT(default_dummy_weights_limit(), 0u);

  ModelConfig odd = small_config();
  odd.intermediate_size = 250;  // not a multiple of 8: 4-bit GPTQ cannot pack it
  try {
    make_dummy_weights(odd, "odd.json");
    FAIL() << "unpackable shape accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by 8"), std::string::npos) << e.what();
  }
}

TEST(DummyBackend, CpuBackendRunsOnDummyWeights) {
  ModelConfig c = small_config();
  BackendOptions options;
  options.device = "cpu";
  options.threads = 2;
  options.kv_cache_tokens = 256;
  DummyBackend dummy = make_dummy_backend(c, "small.json", options, /*seed=*/0);
  ASSERT_NE(dummy.host_weights, nullptr);
  ASSERT_NE(dummy.backend, nullptr);
  EXPECT_EQ(dummy.backend->name(), "cpu");
  SequenceDriver driver(*dummy.backend, {0, 1, 2, 3});
  std::vector<int32_t> tokens(20);
  std::iota(tokens.begin(), tokens.end(), 500);
  int seq = driver.add(tokens);
  driver.run_to_end(seq, 7);
  // Logits are finite, not all equal, and of a moderate size at every position.
  for (int pos = 0; pos < 20; ++pos) {
    const std::vector<float>& logits = driver.logits(seq, pos);
    ASSERT_EQ(logits.size(), 1000u);
    float lo = INFINITY, hi = -INFINITY;
    for (float v : logits) {
      ASSERT_TRUE(std::isfinite(v)) << "position " << pos;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_GT(hi - lo, 0.1f) << "position " << pos;
    EXPECT_LT(hi - lo, 100.0f) << "position " << pos;
  }
  options.device = "tpu";
  EXPECT_THROW(make_dummy_backend(c, "small.json", options), Error);
}

}  // namespace
}  // namespace nibble::test
