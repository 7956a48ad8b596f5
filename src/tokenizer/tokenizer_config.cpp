#include "tokenizer_config.h"

#include "json_fields.h"

namespace nibble::tokenizer_detail {

namespace {

// A special token is a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const nlohmann::json& v, const std::string& where) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw Error(where + ": expected a token string or {\"content\": ...}, got " + v.dump());
}

std::optional<bool> optional_flag(const nlohmann::json& cfg, const char* key, const std::string& where) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  if (!cfg[key].is_boolean()) throw Error(where + "." + key + ": expected true or false, got " + cfg[key].dump());
  return cfg[key].get<bool>();
}

nlohmann::json parse(std::string_view text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view text, const std::string& where) {
  TokenizerConfig config;
  if (text.empty()) return config;
  const nlohmann::json cfg = parse(text, where);
  if (!cfg.is_object()) throw Error(where + ": expected a JSON object");
  for (const char* name : {"bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"}) {
    if (!cfg.contains(name)) continue;
    if (auto t = token_text(cfg[name], where + "." + name)) config.special_tokens[name] = *t;
  }
  if (cfg.contains("bos_token")) config.bos_token = token_text(cfg["bos_token"], where + ".bos_token");
  if (cfg.contains("eos_token")) config.eos_token = token_text(cfg["eos_token"], where + ".eos_token");
  config.add_bos_token = optional_flag(cfg, "add_bos_token", where);
  config.add_eos_token = optional_flag(cfg, "add_eos_token", where);
  config.tokenizer_class = optional_string(cfg, "tokenizer_class", where, "");
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
    const auto& t = cfg["chat_template"];
    if (t.is_string()) {
      config.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      // A list of {"name", "template"}: the "default" one is the chat template.
      for (size_t i = 0; i < t.size(); ++i) {
        const std::string at = where + ".chat_template[" + std::to_string(i) + "]";
        if (require_string(t[i], "name", at) == "default") config.chat_template = require_string(t[i], "template", at);
      }
    } else {
      throw Error(where + ".chat_template: expected a string or a list of {name, template}");
    }
  }
  return config;
}

std::vector<int32_t> parse_generation_eos_ids(std::string_view text, const std::string& where) {
  std::vector<int32_t> ids;
  const nlohmann::json cfg = parse(text, where);
  if (!cfg.is_object() || !cfg.contains("eos_token_id")) return ids;
  const auto& v = cfg["eos_token_id"];
  if (v.is_number_integer()) {
    ids.push_back(v.get<int32_t>());
  } else if (v.is_array()) {
    for (const auto& x : v) {
      if (!x.is_number_integer()) throw Error(where + ".eos_token_id: expected integers, got " + x.dump());
      ids.push_back(x.get<int32_t>());
    }
  } else if (!v.is_null()) {
    throw Error(where + ".eos_token_id: expected an integer or a list, got " + v.dump());
  }
  return ids;
}

bool class_rewrites_post_processor(const std::string& tokenizer_class) {
  for (const char* c : {"LlamaTokenizer", "LlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast",
                        "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"}) {
    if (tokenizer_class == c) return true;
  }
  return false;
}

}  // namespace nibble::tokenizer_detail
