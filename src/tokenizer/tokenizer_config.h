#pragma once
// What nibble reads from tokenizer_config.json (and generation_config.json).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nibble::tokenizer_detail {

struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> chat_template;
  std::optional<bool> add_bos_token;
  std::optional<bool> add_eos_token;
  std::string tokenizer_class;
  nlohmann::json special_tokens = nlohmann::json::object();  // name -> text
  std::vector<int32_t> extra_eos_ids;                        // from generation_config.json
};

// Parses tokenizer_config.json text (empty text: an empty config). `where` names the file.
TokenizerConfig parse_tokenizer_config(std::string_view text, const std::string& where);

// eos_token_id of generation_config.json (an integer or a list of them).
std::vector<int32_t> parse_generation_eos_ids(std::string_view text, const std::string& where);

// Whether transformers' tokenizer class replaces the tokenizer.json post-processor with
// a BOS/EOS template built from add_bos_token / add_eos_token (LlamaTokenizerFast,
// GemmaTokenizerFast and CodeLlamaTokenizerFast call update_post_processor()).
bool class_rewrites_post_processor(const std::string& tokenizer_class);

}  // namespace nibble::tokenizer_detail
