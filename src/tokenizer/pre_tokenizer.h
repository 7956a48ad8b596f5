#pragma once
// tokenizer.json "pre_tokenizer": Split, ByteLevel, Metaspace, Digits, Whitespace,
// WhitespaceSplit, Punctuation and Sequence, with Hugging Face's split behaviours.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "regex.h"

namespace nibble::tokenizer_detail {

// One piece of text on its way to the model.
struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits and rewrites the pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Turns the match spans of `text` into pieces following `behavior` (HF NormalizedString::split).
std::vector<Span> split_by_matches(size_t text_size, const std::vector<Span>& matches, SplitBehavior behavior,
                                   bool invert);

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& where);

}  // namespace nibble::tokenizer_detail
