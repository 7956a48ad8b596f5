#include "nibble/model/config.h"

#include <algorithm>

#include "json_fields.h"
#include "nibble/core/error.h"

namespace nibble {
namespace {

using detail::JsonFields;
using json = nlohmann::json;

struct ArchitectureName {
  Architecture architecture;
  const char* class_name;
  const char* model_type;
};

constexpr ArchitectureName kArchitectures[] = {
    {Architecture::Llama, "LlamaForCausalLM", "llama"},
    {Architecture::Mistral, "MistralForCausalLM", "mistral"},
    {Architecture::Qwen2, "Qwen2ForCausalLM", "qwen2"},
};

std::string supported_list() {
  std::string s;
  for (const auto& a : kArchitectures) s += std::string(s.empty() ? "" : ", ") + a.class_name;
  return s;
}

void read_architecture(const JsonFields& f, ModelConfig& c) {
  if (const json* archs = f.get("architectures")) {
    if (!archs->is_array() || archs->empty()) f.fail("architectures", "must be a non-empty list of strings");
    for (const auto& a : *archs) {
      if (!a.is_string()) f.fail("architectures", "must be a non-empty list of strings");
      for (const auto& known : kArchitectures) {
        if (a.get<std::string>() == known.class_name) {
          c.architecture = known.architecture;
          c.architecture_name = known.class_name;
          return;
        }
      }
    }
    f.fail("architectures", "names unsupported architecture " + (*archs)[0].dump() + " (supported: " +
                                supported_list() + ")");
  }
  auto model_type = f.string("model_type");
  if (!model_type) throw Error(f.source() + ": neither 'architectures' nor 'model_type' is given");
  for (const auto& known : kArchitectures) {
    if (*model_type == known.model_type) {
      c.architecture = known.architecture;
      c.architecture_name = known.class_name;
      return;
    }
  }
  f.fail("model_type", "names unsupported model type '" + *model_type + "' (supported: llama, mistral, qwen2)");
}

RopeScaling read_rope_scaling(const JsonFields& f) {
  RopeScaling r;
  const json* v = f.get("rope_scaling");
  if (!v) return r;
  if (!v->is_object()) f.fail("rope_scaling", "must be an object or null");
  JsonFields rs(*v, f.source() + ": rope_scaling");
  auto type = rs.string("rope_type");
  if (!type) type = rs.string("type");
  if (!type) rs.fail("rope_type", "is missing (expected 'rope_type' or 'type')");
  auto positive = [&](const std::string& key, double fallback, bool required) {
    auto x = rs.number(key);
    if (!x && required) rs.fail(key, "is missing");
    double value = x.value_or(fallback);
    if (!(value > 0)) rs.fail(key, "must be positive, got " + std::to_string(value));
    return value;
  };
  if (*type == "default") return r;
  if (*type == "linear") {
    r.type = RopeScaling::Type::Linear;
    r.factor = positive("factor", 1.0, true);
  } else if (*type == "llama3") {
    r.type = RopeScaling::Type::Llama3;
    r.factor = positive("factor", 1.0, true);
    r.low_freq_factor = positive("low_freq_factor", 1.0, true);
    r.high_freq_factor = positive("high_freq_factor", 4.0, true);
    r.original_max_position_embeddings = rs.required_int_in("original_max_position_embeddings", 1, 1 << 24);
    if (r.high_freq_factor <= r.low_freq_factor)
      rs.fail("high_freq_factor", "must exceed low_freq_factor");
  } else {
    rs.fail("rope_type", "'" + *type + "' is not supported (supported: default, linear, llama3)");
  }
  return r;
}

DType read_torch_dtype(const JsonFields& f) {
  std::string key = f.has("torch_dtype") ? "torch_dtype" : "dtype";
  auto name = f.string(key);
  if (!name || *name == "auto" || *name == "float16" || *name == "half") return DType::F16;
  if (*name == "bfloat16") return DType::BF16;
  if (*name == "float32" || *name == "float") return DType::F32;
  f.fail(key, "'" + *name + "' is not supported (float16, bfloat16 or float32)");
}

void check_quant(const QuantConfig& q, const JsonFields& f) {
  if (q.bits != 4 && q.bits != 8)
    f.fail("bits", "must be 4 or 8, got " + std::to_string(q.bits) + " (other widths are not supported)");
  if (q.group_size != 32 && q.group_size != 64 && q.group_size != 128 && q.group_size != -1)
    f.fail("group_size", "must be 32, 64, 128 or -1, got " + std::to_string(q.group_size));
}

QuantConfig read_quant(const JsonFields& f) {
  QuantConfig q;
  q.quantized = true;
  if (auto method = f.string("quant_method"); method && *method != "gptq")
    f.fail("quant_method", "is '" + *method + "', but only 'gptq' checkpoints are supported");
  if (f.boolean("is_marlin_format").value_or(false))
    f.fail("is_marlin_format", "is true; Marlin-repacked checkpoints are not supported (use the gptq format)");
  if (auto pack = f.string("pack_dtype"); pack && *pack != "int32" && *pack != "torch.int32")
    f.fail("pack_dtype", "is '" + *pack + "'; only int32-packed GPTQ weights are supported");
  if (!f.has("bits")) f.fail("bits", "is missing");
  q.bits = f.int_in("bits", 4, -1000, 1000);
  q.group_size = f.int_in("group_size", 128, -1000000, 1000000);
  q.desc_act = f.boolean("desc_act").value_or(false);
  q.sym = f.boolean("sym").value_or(true);
  std::string format_key = f.has("checkpoint_format") ? "checkpoint_format" : "format";
  auto format = f.string(format_key).value_or("gptq");
  if (format == "gptq") {
    q.format = QuantConfig::Format::Gptq;
  } else if (format == "gptq_v2") {
    q.format = QuantConfig::Format::GptqV2;
  } else {
    f.fail(format_key, "'" + format + "' is not supported (gptq or gptq_v2)");
  }
  check_quant(q, f);
  return q;
}

}  // namespace

std::string describe_model_config(const ModelConfig& c) {
  std::string s = c.architecture_name.empty() ? architecture_name(c.architecture) : c.architecture_name;
  s += ": " + std::to_string(c.num_hidden_layers) + " layers, hidden " + std::to_string(c.hidden_size) + ", " +
       std::to_string(c.num_attention_heads) + " heads / " + std::to_string(c.num_key_value_heads) +
       " kv heads of " + std::to_string(c.head_dim) + ", intermediate " + std::to_string(c.intermediate_size) +
       ", vocab " + std::to_string(c.vocab_size) + ", " + std::to_string(c.max_position_embeddings) + " positions";
  if (c.quant.quantized) {
    s += ", GPTQ " + std::to_string(c.quant.bits) + "-bit " +
         (c.quant.group_size > 0 ? "g" + std::to_string(c.quant.group_size) : std::string("one group")) +
         (c.quant.desc_act ? " act-order" : "") + (c.quant.sym ? " sym" : " asym") +
         (c.quant.format == QuantConfig::Format::GptqV2 ? " (gptq_v2)" : "");
  } else {
    s += ", unquantized " + std::string(dtype_name(c.torch_dtype));
  }
  return s;
}

std::string architecture_name(Architecture a) {
  for (const auto& known : kArchitectures)
    if (known.architecture == a) return known.class_name;
  return "unknown";
}

QuantConfig parse_quant_config(const std::string& json_text, const std::string& source) {
  json root = detail::parse_json_object(json_text, source);
  return read_quant(JsonFields(root, source));
}

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json root = detail::parse_json_object(json_text, source);
  JsonFields f(root, source);
  ModelConfig c;
  read_architecture(f, c);

  if (auto act = f.string("hidden_act"); act && *act != "silu")
    f.fail("hidden_act", "is '" + *act + "', but only 'silu' is supported");
  c.hidden_size = f.required_int_in("hidden_size", 1, 1 << 17);
  c.intermediate_size = f.required_int_in("intermediate_size", 1, 1 << 20);
  c.num_hidden_layers = f.required_int_in("num_hidden_layers", 1, 4096);
  c.num_attention_heads = f.required_int_in("num_attention_heads", 1, 4096);
  c.num_key_value_heads = f.int_in("num_key_value_heads", c.num_attention_heads, 1, 4096);
  c.vocab_size = f.required_int_in("vocab_size", 1, 1 << 24);
  if (f.has("head_dim")) {
    c.head_dim = f.int_in("head_dim", 0, 1, 4096);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      f.fail("num_attention_heads", std::to_string(c.num_attention_heads) + " does not divide hidden_size " +
                                        std::to_string(c.hidden_size) + " (and no head_dim is given)");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) f.fail("head_dim", "must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", std::to_string(c.num_key_value_heads) + " does not divide num_attention_heads " +
                                      std::to_string(c.num_attention_heads));
  const int default_max_positions = c.architecture == Architecture::Llama     ? 2048
                                    : c.architecture == Architecture::Mistral ? 32768
                                                                              : 32768;
  c.max_position_embeddings = f.int_in("max_position_embeddings", default_max_positions, 1, 1 << 24);
  c.rms_norm_eps = f.number("rms_norm_eps").value_or(1e-6);
  if (!(c.rms_norm_eps > 0)) f.fail("rms_norm_eps", "must be positive");
  c.rope_theta = f.number("rope_theta").value_or(10000.0);
  if (!(c.rope_theta > 0)) f.fail("rope_theta", "must be positive");
  c.rope_scaling = read_rope_scaling(f);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings").value_or(false);
  c.attention_bias = c.architecture == Architecture::Qwen2 || f.boolean("attention_bias").value_or(false);
  c.torch_dtype = read_torch_dtype(f);

  const bool window_enabled =
      c.architecture == Architecture::Mistral ||
      (c.architecture == Architecture::Qwen2 && f.boolean("use_sliding_window").value_or(false));
  if (window_enabled && f.has("sliding_window")) {
    int window = f.int_in("sliding_window", 0, 1, 1 << 24);
    if (window < c.max_position_embeddings) c.sliding_window = window;
  }

  if (f.has("bos_token_id")) {
    auto bos = f.int_or_list("bos_token_id");
    if (bos->size() != 1) f.fail("bos_token_id", "must be a single integer");
    c.bos_token_id = bos->front();
  }
  c.eos_token_ids = f.int_or_list("eos_token_id").value_or(std::vector<int>{});
  auto check_vocab = [&](const std::string& key, int id) {
    if (id >= c.vocab_size)
      f.fail(key, "id " + std::to_string(id) + " is outside the vocabulary (vocab_size " +
                      std::to_string(c.vocab_size) + ")");
  };
  if (c.bos_token_id) check_vocab("bos_token_id", *c.bos_token_id);
  for (int id : c.eos_token_ids) check_vocab("eos_token_id", id);

  if (const json* qc = f.get("quantization_config")) {
    if (!qc->is_object()) f.fail("quantization_config", "must be an object");
    c.quant = read_quant(JsonFields(*qc, source + ": quantization_config"));
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& model_dir) {
  std::error_code ec;
  const bool is_file = std::filesystem::is_regular_file(model_dir, ec);
  const std::filesystem::path config_path = is_file ? model_dir : model_dir / "config.json";
  const std::filesystem::path dir = is_file ? model_dir.parent_path() : model_dir;
  if (!is_file && !std::filesystem::is_directory(model_dir, ec))
    throw Error("model path " + model_dir.string() + " is neither a folder nor a config file");
  if (!std::filesystem::exists(config_path, ec))
    throw Error("model folder " + dir.string() + " has no config.json");
  ModelConfig c = parse_model_config(detail::read_text_file(config_path.string()), config_path.string());
  const auto quantize_config = dir / "quantize_config.json";
  if (!c.quant.quantized && std::filesystem::is_regular_file(quantize_config, ec))
    c.quant = parse_quant_config(detail::read_text_file(quantize_config.string()), quantize_config.string());
  return c;
}

GenerationConfig parse_generation_config(const std::string& json_text, const std::string& source) {
  json root = detail::parse_json_object(json_text, source);
  JsonFields f(root, source);
  GenerationConfig g;
  g.eos_token_ids = f.int_or_list("eos_token_id").value_or(std::vector<int>{});
  if (f.has("bos_token_id")) {
    auto bos = f.int_or_list("bos_token_id");
    if (bos->size() != 1) f.fail("bos_token_id", "must be a single integer");
    g.bos_token_id = bos->front();
  }
  g.temperature = f.number("temperature");
  if (g.temperature && *g.temperature < 0) f.fail("temperature", "must not be negative");
  g.top_p = f.number("top_p");
  if (g.top_p && (*g.top_p <= 0 || *g.top_p > 1)) f.fail("top_p", "must be in (0, 1]");
  if (f.has("top_k")) g.top_k = f.int_in("top_k", 0, -1, 1 << 24);
  g.repetition_penalty = f.number("repetition_penalty");
  if (g.repetition_penalty && *g.repetition_penalty <= 0) f.fail("repetition_penalty", "must be positive");
  if (f.has("max_new_tokens")) g.max_new_tokens = f.int_in("max_new_tokens", 0, 1, 1 << 30);
  return g;
}

GenerationConfig load_generation_config(const std::filesystem::path& model_dir) {
  std::error_code ec;
  const std::filesystem::path dir =
      std::filesystem::is_regular_file(model_dir, ec) ? model_dir.parent_path() : model_dir;
  const auto path = dir / "generation_config.json";
  if (!std::filesystem::is_regular_file(path, ec)) return {};
  return parse_generation_config(detail::read_text_file(path.string()), path.string());
}

}  // namespace nibble
