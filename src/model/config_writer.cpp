#include <nlohmann/json.hpp>

#include "model_writer.h"
#include "nibble/model/demo_model.h"

namespace nibble {
namespace {

using ordered_json = nlohmann::ordered_json;

const char* model_type(Architecture a) {
  switch (a) {
    case Architecture::Llama:
      return "llama";
    case Architecture::Mistral:
      return "mistral";
    case Architecture::Qwen2:
      return "qwen2";
  }
  return "llama";
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::BF16:
      return "bfloat16";
    case DType::F32:
      return "float32";
    default:
      return "float16";
  }
}

}  // namespace

std::string model_config_json(const ModelConfig& c) {
  ordered_json j;
  j["architectures"] = {architecture_name(c.architecture)};
  j["model_type"] = model_type(c.architecture);
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  switch (c.rope_scaling.type) {
    case RopeScaling::Type::None:
      j["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Type::Linear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scaling.factor}};
      break;
    case RopeScaling::Type::Llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", c.rope_scaling.factor},
                           {"low_freq_factor", c.rope_scaling.low_freq_factor},
                           {"high_freq_factor", c.rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.architecture == Architecture::Llama) j["attention_bias"] = c.attention_bias;
  if (c.architecture != Architecture::Llama) j["sliding_window"] = c.sliding_window ? ordered_json(*c.sliding_window) : nullptr;
  if (c.architecture == Architecture::Qwen2) j["use_sliding_window"] = c.sliding_window.has_value();
  j["torch_dtype"] = torch_dtype_name(c.torch_dtype);
  j["bos_token_id"] = c.bos_token_id ? ordered_json(*c.bos_token_id) : nullptr;
  j["eos_token_id"] = detail::ids_json(c.eos_token_ids);
  if (c.quant.quantized) {
    j["quantization_config"] = {{"quant_method", "gptq"},
                                {"bits", c.quant.bits},
                                {"group_size", c.quant.group_size},
                                {"desc_act", c.quant.desc_act},
                                {"sym", c.quant.sym},
                                {"checkpoint_format",
                                 c.quant.format == QuantConfig::Format::Gptq ? "gptq" : "gptq_v2"}};
  }
  return j.dump(2) + "\n";
}

}  // namespace nibble
