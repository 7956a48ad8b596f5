#pragma once
// Added tokens of tokenizer.json ("added_tokens"): matched in the text before the
// model runs, leftmost-longest as Hugging Face's Aho-Corasick matcher does, with
// lstrip/rstrip/single_word handling. Tokens with normalized=false are matched in
// the raw text; those with normalized=true in the normalized text.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "regex.h"

namespace nibble::tokenizer_detail {

class Normalizer;

struct AddedToken {
  int32_t id = 0;
  std::string content;
  std::string decoded;  // what decode() and id_to_token() give: the normalized content when normalized
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// One piece of a split: either plain text or a matched added token.
struct AddedSplit {
  Span span;
  std::optional<int32_t> id;
};

// A byte trie giving the longest pattern at a position.
class LongestMatchTrie {
 public:
  void insert(std::string_view pattern, int32_t value);
  // Length and value of the longest pattern that starts at text[pos], if any.
  std::optional<std::pair<size_t, int32_t>> longest_at(std::string_view text, size_t pos) const;
  bool empty() const { return nodes_.size() <= 1; }

 private:
  struct Node {
    std::unordered_map<unsigned char, int32_t> children;
    int32_t value = -1;
  };
  std::vector<Node> nodes_{1};
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalizer` (may be null) gives the matching form of normalized tokens. Ids are
  // assigned as HF does on load: a token already in the model vocab takes the model's id,
  // a new one the next free id after the model vocab (the ids written in the file only
  // matter when they agree).
  AddedVocabulary(const nlohmann::json& added_tokens, const Normalizer* normalizer,
                  const std::function<std::optional<int32_t>(std::string_view)>& model_token_to_id,
                  size_t model_vocab_len, const std::string& where);

  // Splits `text` on the raw (normalized=false) or normalized (normalized=true) tokens.
  std::vector<AddedSplit> split(std::string_view text, bool normalized_tokens) const;

  const AddedToken* find(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  LongestMatchTrie raw_trie_;
  LongestMatchTrie normalized_trie_;
};

}  // namespace nibble::tokenizer_detail
