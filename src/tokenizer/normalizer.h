#pragma once
// tokenizer.json "normalizer": NFC/NFD/NFKC/NFKD, Lowercase, Strip, Replace, Prepend,
// Sequence (others are rejected with an error naming the type).
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace nibble::tokenizer_detail {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes valid UTF-8 in place.
  virtual void normalize(std::string& text) const = 0;
};

// `where` names the file and field for error messages. Returns null for JSON null.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace nibble::tokenizer_detail
