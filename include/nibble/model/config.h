#pragma once
// What config.json, generation_config.json and the GPTQ quantization config say
// about a model, parsed and validated.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nibble/core/dtype.h"

namespace nibble {

enum class Architecture { Llama, Mistral, Qwen2 };

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct QuantConfig {
  enum class Format { Gptq, GptqV2 };  // gptq stores zero-1, gptq_v2 the zero itself
  bool quantized = false;
  int bits = 4;          // 4 or 8
  int group_size = 128;  // 32, 64, 128 or -1 (one group over all input rows)
  bool desc_act = false;
  bool sym = true;
  Format format = Format::Gptq;
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  std::string architecture_name;  // as written, e.g. "LlamaForCausalLM"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry a bias (Qwen2 always)
  // Mistral/Qwen2 sliding-window attention width, when the config enables it
  // (attention then only sees the last sliding_window positions).
  std::optional<int> sliding_window;
  DType torch_dtype = DType::F16;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;
  QuantConfig quant;
};

struct GenerationConfig {
  std::vector<int> eos_token_ids;
  std::optional<int> bos_token_id;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> repetition_penalty;
  std::optional<int> max_new_tokens;
};

// Reads DIR/config.json, and the GPTQ settings from its quantization_config or
// from DIR/quantize_config.json. Throws nibble::Error naming the file and key.
// model_dir may also name a config.json-style file itself (its folder is then
// searched for quantize_config.json).
ModelConfig load_model_config(const std::filesystem::path& model_dir);

// Parses config.json text (`source` names it in errors); quantization settings
// come only from its quantization_config.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);

// Parses a quantize_config.json / quantization_config object's text.
QuantConfig parse_quant_config(const std::string& json_text, const std::string& source);

// Reads DIR/generation_config.json when present; defaults otherwise (eos ids
// then empty: callers fall back to ModelConfig::eos_token_ids).
GenerationConfig load_generation_config(const std::filesystem::path& model_dir);
GenerationConfig parse_generation_config(const std::string& json_text, const std::string& source);

std::string architecture_name(Architecture a);

// One line for logs: "LlamaForCausalLM: 32 layers, hidden 4096, ..., GPTQ 4-bit g128 act-order sym".
std::string describe_model_config(const ModelConfig& config);

}  // namespace nibble
