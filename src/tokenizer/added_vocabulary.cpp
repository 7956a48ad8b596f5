#include "added_vocabulary.h"

#include <nlohmann/json.hpp>

#include "json_fields.h"
#include "normalizer.h"
#include "utf8.h"

namespace nibble::tokenizer_detail {

void LongestMatchTrie::insert(std::string_view pattern, int32_t value) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char c : pattern) {
    auto it = nodes_[node].children.find(c);
    if (it == nodes_[node].children.end()) {
      nodes_.emplace_back();
      const auto child = static_cast<int32_t>(nodes_.size() - 1);
      nodes_[node].children.emplace(c, child);
      node = child;
    } else {
      node = it->second;
    }
  }
  // The first token with a given content wins, as in HF's matcher.
  if (nodes_[node].value < 0) nodes_[node].value = value;
}

std::optional<std::pair<size_t, int32_t>> LongestMatchTrie::longest_at(std::string_view text, size_t pos) const {
  std::optional<std::pair<size_t, int32_t>> best;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& children = nodes_[node].children;
    auto it = children.find(static_cast<unsigned char>(text[i]));
    if (it == children.end()) break;
    node = it->second;
    if (nodes_[node].value >= 0) best = {{i + 1 - pos, nodes_[node].value}};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(const nlohmann::json& added_tokens, const Normalizer* normalizer,
                                 const std::function<std::optional<int32_t>(std::string_view)>& model_token_to_id,
                                 size_t model_vocab_len, const std::string& where) {
  if (added_tokens.is_null()) return;
  if (!added_tokens.is_array()) throw Error(where + ": expected an array of added tokens");
  std::optional<int32_t> max_added_id;
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const auto& t = added_tokens[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    const auto& id = require_field(t, "id", at);
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > 0x7FFFFFFF) {
      throw Error(at + ".id: expected a non-negative integer, got " + id.dump());
    }
    AddedToken token;
    token.content = require_string(t, "content", at);
    if (token.content.empty()) throw Error(at + ".content: an added token cannot be empty");
    if (!is_valid_utf8(token.content)) throw Error(at + ".content: not valid UTF-8");
    token.single_word = optional_bool(t, "single_word", at, false);
    token.lstrip = optional_bool(t, "lstrip", at, false);
    token.rstrip = optional_bool(t, "rstrip", at, false);
    token.special = optional_bool(t, "special", at, false);
    token.normalized = optional_bool(t, "normalized", at, !token.special);
    if (by_content_.count(token.content)) continue;  // HF keeps the first of equal contents
    token.decoded = token.content;
    if (token.normalized && normalizer) normalizer->normalize(token.decoded);
    if (auto existing = model_token_to_id(token.content)) {
      token.id = *existing;
    } else if (!max_added_id) {
      token.id = static_cast<int32_t>(model_vocab_len);
    } else {
      token.id = *max_added_id >= static_cast<int32_t>(model_vocab_len) || model_vocab_len == 0
                     ? *max_added_id + 1
                     : static_cast<int32_t>(model_vocab_len);
    }
    max_added_id = std::max(max_added_id.value_or(token.id), token.id);
    by_id_[token.id] = tokens_.size();
    by_content_[token.content] = tokens_.size();
    tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const auto& token = tokens_[i];
    if (by_id_[token.id] != i) continue;  // a later token took this id over
    if (token.normalized) {
      normalized_trie_.insert(token.decoded, static_cast<int32_t>(i));
    } else {
      raw_trie_.insert(token.content, static_cast<int32_t>(i));
    }
  }
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

namespace {

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  const char32_t c = last_code_point(s);
  return is_alphanumeric(c) || c == '_';
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  const char32_t c = first_code_point(s);
  return is_alphanumeric(c) || c == '_';
}

// Byte offset where the trailing whitespace of s begins.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(s[begin]) & 0xC0) == 0x80) --begin;
    size_t k = begin;
    if (!is_whitespace(next_code_point(s, k))) break;
    end = begin;
  }
  return end;
}

// Byte length of the leading whitespace of s.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t k = i;
    if (!is_whitespace(next_code_point(s, k))) break;
    i = k;
  }
  return i;
}

}  // namespace

std::vector<AddedSplit> AddedVocabulary::split(std::string_view text, bool normalized_tokens) const {
  const LongestMatchTrie& trie = normalized_tokens ? normalized_trie_ : raw_trie_;
  std::vector<AddedSplit> splits;
  if (trie.empty() || text.empty()) {
    splits.push_back({{0, text.size()}, std::nullopt});
    return splits;
  }
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto match = trie.longest_at(text, pos);
    if (!match) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[match->second];
    size_t start = pos;
    size_t stop = pos + match->first;
    const size_t match_end = stop;
    if (token.single_word) {
      const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) {
        // Not a whole word: matching resumes after this match, as non-overlapping search would.
        pos = match_end;
        continue;
      }
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    if (start_offset < start) splits.push_back({{start_offset, start}, std::nullopt});
    splits.push_back({{start, stop}, token.id});
    start_offset = stop;
    pos = stop;
  }
  if (start_offset != text.size()) splits.push_back({{start_offset, text.size()}, std::nullopt});
  return splits;
}

}  // namespace nibble::tokenizer_detail
