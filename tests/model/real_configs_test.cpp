// Real checkpoints' config.json files (tests/model/configs): they parse, and
// the tensor list built from them has the models' published parameter counts
// and AutoGPTQ tensor shapes.
#include <gtest/gtest.h>

#include <map>

#include "nibble/model/config.h"
#include "nibble/model/weight_names.h"

namespace nibble {
namespace {

std::filesystem::path config_path(const std::string& name) {
  return std::filesystem::path(NIBBLE_SOURCE_DIR) / "tests/model/configs" / name;
}

// Parameters of the unquantized model: every dense shape the weight list names.
uint64_t parameter_count(const ModelConfig& c) {
  uint64_t total = 0;
  auto add = [&](const std::vector<int64_t>& shape) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    total += n;
  };
  ModelWeights w;
  for_each_weight(c, w,
                  {[&](const TensorSpec& t, TensorView&) { add(t.shape); },
                   [&](const LinearSpec& l, LinearWeights&) {
                     for (const TensorSpec& t : linear_tensor_specs(l, false, c.quant))
                       if (t.required) add(t.shape);
                   }});
  return total;
}

// name -> shape of the GPTQ tensors of every linear.
std::map<std::string, std::vector<int64_t>> gptq_shapes(const ModelConfig& c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  ModelWeights w;
  for_each_weight(c, w,
                  {[&](const TensorSpec&, TensorView&) {},
                   [&](const LinearSpec& l, LinearWeights&) {
                     for (const TensorSpec& t : linear_tensor_specs(l, true, c.quant)) shapes[t.name] = t.shape;
                   }});
  return shapes;
}

TEST(RealConfigs, Llama31_8B) {
  ModelConfig c = load_model_config(config_path("llama-3.1-8b-instruct-gptq-int4.json"));
  EXPECT_EQ(c.architecture, Architecture::Llama);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_TRUE(c.quant.quantized);
  EXPECT_TRUE(c.quant.desc_act);
  EXPECT_EQ(c.eos_token_ids.size(), 3u);
  EXPECT_EQ(parameter_count(c), 8030261248ull);  // Llama-3.1-8B
  auto shapes = gptq_shapes(c);
  EXPECT_EQ(shapes["model.layers.31.mlp.down_proj.qweight"], (std::vector<int64_t>{1792, 4096}));
  EXPECT_EQ(shapes["model.layers.31.mlp.down_proj.qzeros"], (std::vector<int64_t>{112, 512}));
  EXPECT_EQ(shapes["model.layers.31.mlp.down_proj.scales"], (std::vector<int64_t>{112, 4096}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.k_proj.qweight"], (std::vector<int64_t>{512, 1024}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.k_proj.g_idx"], (std::vector<int64_t>{4096}));
  EXPECT_EQ(shapes["lm_head.qweight"], (std::vector<int64_t>{512, 128256}));
}

TEST(RealConfigs, Qwen25_7B) {
  ModelConfig c = load_model_config(config_path("qwen2.5-7b-instruct-gptq-int4.json"));
  EXPECT_EQ(c.architecture, Architecture::Qwen2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window is false
  EXPECT_FALSE(c.quant.desc_act);
  EXPECT_EQ(parameter_count(c), 7615616512ull);  // Qwen2.5-7B
  auto shapes = gptq_shapes(c);
  EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.qzeros"], (std::vector<int64_t>{148, 448}));
  EXPECT_EQ(shapes["model.layers.0.self_attn.v_proj.bias"], (std::vector<int64_t>{512}));
}

TEST(RealConfigs, Mistral7B_v02) {
  ModelConfig c = load_model_config(config_path("mistral-7b-instruct-v0.2-gptq.json"));
  EXPECT_EQ(c.architecture, Architecture::Mistral);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_EQ(c.quant.format, QuantConfig::Format::Gptq);
  EXPECT_EQ(parameter_count(c), 7241732096ull);  // Mistral-7B
}

}  // namespace
}  // namespace nibble
