#pragma once
// A tokenizer.json "pattern" object: {"String": "..."} (literal) or {"Regex": "..."}.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "regex.h"

namespace nibble::tokenizer_detail {

class Pattern {
 public:
  Pattern(const nlohmann::json& spec, const std::string& where);
  explicit Pattern(std::string literal) : literal_(std::move(literal)) {}
  std::vector<Span> find_all(std::string_view text) const;
  // Replaces every match with `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

}  // namespace nibble::tokenizer_detail
