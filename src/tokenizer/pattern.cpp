#include "pattern.h"

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"

namespace nibble::tokenizer_detail {

Pattern::Pattern(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_object() && spec.contains("String") && spec["String"].is_string()) {
    literal_ = spec["String"].get<std::string>();
  } else if (spec.is_object() && spec.contains("Regex") && spec["Regex"].is_string()) {
    regex_ = std::make_shared<Regex>(spec["Regex"].get<std::string>(), where);
  } else if (spec.is_string()) {
    literal_ = spec.get<std::string>();
  } else {
    throw Error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + spec.dump());
  }
}

std::vector<Span> Pattern::find_all(std::string_view text) const {
  return regex_ ? regex_->find_all(text) : find_all_literal(text, literal_);
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t prev = 0;
  for (const auto& [begin, end] : find_all(text)) {
    out.append(text.substr(prev, begin - prev));
    out.append(content);
    prev = end;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace nibble::tokenizer_detail
