#include "nibble/model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "temp_dir.h"

namespace nibble {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::write_file;

json llama_json() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": false, "attention_bias": false, "torch_dtype": "bfloat16",
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu"
  })");
}

ModelConfig parse(const json& j) { return parse_model_config(j.dump(), "config.json"); }

// Runs parse and returns the error message ("" if it parsed).
std::string parse_error(const json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesLlama3) {
  ModelConfig c = parse(llama_json());
  EXPECT_EQ(c.architecture, Architecture::Llama);
  EXPECT_EQ(c.architecture_name, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_FALSE(c.quant.quantized);
  EXPECT_FALSE(c.sliding_window.has_value());
}

TEST(ModelConfig, ParsesMistralWithDefaults) {
  json j = json::parse(R"({
    "architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 32000, "max_position_embeddings": 32768, "rope_theta": 10000.0,
    "sliding_window": 4096, "head_dim": null, "bos_token_id": 1, "eos_token_id": 2,
    "torch_dtype": "float16"
  })");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.architecture, Architecture::Mistral);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(c.torch_dtype, DType::F16);
  EXPECT_FALSE(c.attention_bias);
}

TEST(ModelConfig, ParsesQwen2WithBiasAndTiedEmbeddings) {
  json j = json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06, "sliding_window": 32768, "use_sliding_window": false,
    "tie_word_embeddings": true, "bos_token_id": 151643, "eos_token_id": 151645,
    "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128,
                            "desc_act": true, "sym": true, "checkpoint_format": "gptq"}
  })");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.architecture, Architecture::Qwen2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.attention_bias);  // Qwen2 always has q/k/v bias
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());
  ASSERT_TRUE(c.quant.quantized);
  EXPECT_EQ(c.quant.bits, 4);
  EXPECT_EQ(c.quant.group_size, 128);
  EXPECT_TRUE(c.quant.desc_act);
  EXPECT_TRUE(c.quant.sym);
  EXPECT_EQ(c.quant.format, QuantConfig::Format::Gptq);
}

TEST(ModelConfig, ExplicitHeadDimAndModelTypeFallback) {
  json j = llama_json();
  j.erase("architectures");
  j["head_dim"] = 64;  // not hidden / heads
  ModelConfig c = parse(j);
  EXPECT_EQ(c.architecture, Architecture::Llama);
  EXPECT_EQ(c.head_dim, 64);
}

TEST(ModelConfig, LinearRopeScalingWithLegacyTypeKey) {
  json j = llama_json();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 2.0);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope_scaling.type, RopeScaling::Type::None);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse(j).rope_scaling.type, RopeScaling::Type::None);
}

TEST(ModelConfig, GptqV2AndAsymFromQuantizationConfig) {
  json j = llama_json();
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", -1},
                              {"desc_act", false}, {"sym", false}, {"checkpoint_format", "gptq_v2"}};
  ModelConfig c = parse(j);
  EXPECT_EQ(c.quant.bits, 8);
  EXPECT_EQ(c.quant.group_size, -1);
  EXPECT_FALSE(c.quant.sym);
  EXPECT_EQ(c.quant.format, QuantConfig::Format::GptqV2);
}

TEST(ModelConfig, ErrorsNameFileAndKey) {
  struct Case {
    std::function<void(json&)> edit;
    std::vector<std::string> expected;  // substrings of the message
  };
  const std::vector<Case> cases = {
      {[](json& j) { j.erase("hidden_size"); }, {"config.json", "hidden_size", "missing"}},
      {[](json& j) { j["hidden_size"] = "4096"; }, {"config.json", "hidden_size", "integer"}},
      {[](json& j) { j["num_hidden_layers"] = 2.5; }, {"num_hidden_layers", "integer"}},
      {[](json& j) { j["vocab_size"] = -3; }, {"vocab_size"}},
      {[](json& j) { j["architectures"] = {"GemmaForCausalLM"}; }, {"architectures", "GemmaForCausalLM"}},
      {[](json& j) { j["num_attention_heads"] = 30; }, {"num_attention_heads", "30", "4096"}},
      {[](json& j) { j["num_key_value_heads"] = 5; }, {"num_key_value_heads", "5"}},
      {[](json& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; }, {"rope_scaling", "yarn"}},
      {[](json& j) { j["rope_scaling"] = {{"factor", 4.0}}; }, {"rope_scaling", "rope_type"}},
      {[](json& j) { j["rope_scaling"].erase("low_freq_factor"); }, {"rope_scaling", "low_freq_factor"}},
      {[](json& j) { j["rope_scaling"] = {{"rope_type", "linear"}}; }, {"rope_scaling", "factor"}},
      {[](json& j) { j["torch_dtype"] = "float8"; }, {"torch_dtype", "float8"}},
      {[](json& j) { j["eos_token_id"] = "x"; }, {"eos_token_id"}},
      {[](json& j) { j["eos_token_id"] = 999999; }, {"eos_token_id", "999999", "vocab"}},
      {[](json& j) { j["hidden_act"] = "gelu"; }, {"hidden_act", "gelu"}},
      {[](json& j) { j["tie_word_embeddings"] = "yes"; }, {"tie_word_embeddings"}},
      {[](json& j) { j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}}; },
       {"quantization_config", "quant_method", "awq"}},
      {[](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 3}}; },
       {"quantization_config", "bits", "3"}},
      {[](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 100}}; },
       {"group_size", "100"}},
      {[](json& j) {
         j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"checkpoint_format", "marlin"}};
       },
       {"checkpoint_format", "marlin"}},
      {[](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"group_size", 128}}; }, {"bits", "missing"}},
      {[](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"pack_dtype", "int16"}}; },
       {"pack_dtype", "int16"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    json j = llama_json();
    cases[i].edit(j);
    const std::string message = parse_error(j);
    ASSERT_FALSE(message.empty()) << "case " << i << " parsed: " << j.dump();
    for (const auto& s : cases[i].expected) EXPECT_NE(message.find(s), std::string::npos) << message;
  }
  EXPECT_NE(parse_error(json::array()).find("config.json"), std::string::npos);
  // A value nested deeper than any stack is described, not printed.
  json deep = llama_json();
  deep.erase("hidden_size");
  std::string text = deep.dump();
  text.insert(1, "\"hidden_size\": " + std::string(300000, '[') + std::string(300000, ']') + ", ");
  try {
    parse_model_config(text, "config.json");
    FAIL() << "deeply nested hidden_size accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_model_config("{not json", "config.json"), Error);
}

TEST(ModelConfig, LoadsFolderFileAndQuantizeConfigJson) {
  TempDir dir;
  json j = llama_json();
  write_file(dir / "config.json", j.dump());
  write_file(dir / "quantize_config.json",
             R"({"bits": 4, "group_size": 64, "desc_act": true, "sym": false, "checkpoint_format": "gptq_v2"})");
  ModelConfig c = load_model_config(dir.path());
  ASSERT_TRUE(c.quant.quantized);
  EXPECT_EQ(c.quant.group_size, 64);
  EXPECT_TRUE(c.quant.desc_act);
  EXPECT_FALSE(c.quant.sym);
  EXPECT_EQ(c.quant.format, QuantConfig::Format::GptqV2);

  // A config file given directly (as for --load-format dummy).
  write_file(dir / "llama-8b.json", j.dump());
  ModelConfig from_file = load_model_config(dir / "llama-8b.json");
  EXPECT_EQ(from_file.hidden_size, 4096);
  EXPECT_TRUE(from_file.quant.quantized);  // quantize_config.json beside it

  // quantization_config in config.json wins over quantize_config.json.
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 8}, {"group_size", 32}};
  write_file(dir / "config.json", j.dump());
  EXPECT_EQ(load_model_config(dir.path()).quant.bits, 8);

  write_file(dir / "quantize_config.json", R"({"bits": 2})");
  j.erase("quantization_config");
  write_file(dir / "config.json", j.dump());
  try {
    load_model_config(dir.path());
    FAIL() << "2-bit quantize_config.json accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quantize_config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bits"), std::string::npos) << e.what();
  }
  TempDir empty;
  EXPECT_THROW(load_model_config(empty.path()), Error);
  EXPECT_THROW(load_model_config(empty / "nope"), Error);
}

TEST(GenerationConfig, EosIntOrListAndDefaults) {
  TempDir dir;
  GenerationConfig none = load_generation_config(dir.path());
  EXPECT_TRUE(none.eos_token_ids.empty());
  EXPECT_FALSE(none.temperature.has_value());

  write_file(dir / "generation_config.json",
             R"({"bos_token_id": 1, "eos_token_id": [2, 32000], "temperature": 0.6, "top_p": 0.9,
                 "top_k": 40, "repetition_penalty": 1.1, "max_new_tokens": 256, "do_sample": true})");
  GenerationConfig g = load_generation_config(dir.path());
  EXPECT_EQ(g.eos_token_ids, (std::vector<int>{2, 32000}));
  EXPECT_EQ(g.bos_token_id, 1);
  EXPECT_DOUBLE_EQ(*g.temperature, 0.6);
  EXPECT_DOUBLE_EQ(*g.top_p, 0.9);
  EXPECT_EQ(g.top_k, 40);
  EXPECT_DOUBLE_EQ(*g.repetition_penalty, 1.1);
  EXPECT_EQ(g.max_new_tokens, 256);

  write_file(dir / "generation_config.json", R"({"eos_token_id": 7})");
  EXPECT_EQ(load_generation_config(dir.path()).eos_token_ids, std::vector<int>{7});

  write_file(dir / "generation_config.json", R"({"eos_token_id": [2, "x"]})");
  try {
    load_generation_config(dir.path());
    FAIL() << "bad eos accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("generation_config.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("eos_token_id"), std::string::npos);
  }
}

TEST(ModelConfig, DescribesItselfInOneLine) {
  json j = llama_json();
  j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}, {"desc_act", true}};
  const std::string s = describe_model_config(parse(j));
  EXPECT_EQ(s, "LlamaForCausalLM: 32 layers, hidden 4096, 32 heads / 8 kv heads of 128, intermediate 14336, "
               "vocab 128256, 131072 positions, GPTQ 4-bit g128 act-order sym");
}

TEST(ModelConfig, ArchitectureNames) {
  EXPECT_EQ(architecture_name(Architecture::Llama), "LlamaForCausalLM");
  EXPECT_EQ(architecture_name(Architecture::Mistral), "MistralForCausalLM");
  EXPECT_EQ(architecture_name(Architecture::Qwen2), "Qwen2ForCausalLM");
}

}  // namespace
}  // namespace nibble
