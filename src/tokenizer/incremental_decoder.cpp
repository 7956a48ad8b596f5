// Streaming detokenization as vLLM's detokenizer and HF's DecodeStream do: decode a
// window of earlier tokens with and without the new ones and emit the difference,
// holding text back while it ends in an incomplete UTF-8 sequence.
#include <algorithm>

#include "nibble/tokenizer/tokenizer.h"
#include "utf8.h"

namespace nibble {

namespace {

// How many prompt tokens give the first generated token its context (vLLM uses 5).
constexpr size_t kPrefixContextTokens = 5;

bool ends_with_replacement(const std::string& s) {
  const auto r = tokenizer_detail::kReplacementChar;
  return s.size() >= r.size() && s.compare(s.size() - r.size(), r.size(), r) == 0;
}

}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

void IncrementalDecoder::set_prefix(std::span<const int32_t> prefix_ids) {
  ids_.assign(prefix_ids.begin(), prefix_ids.end());
  read_offset_ = ids_.size();
  prefix_offset_ = ids_.size() > kPrefixContextTokens ? ids_.size() - kPrefixContextTokens : 0;
}

std::string IncrementalDecoder::push(int32_t id) {
  ids_.push_back(id);
  if (tokenizer_.is_byte_fallback(id)) return {};
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string new_text = tokenizer_.decode(all.subspan(prefix_offset_), skip_special_);
  if (new_text.size() <= prefix_text.size() || ends_with_replacement(new_text)) return {};
  // The window's text normally extends the prefix's; if a decoder rewrote the prefix,
  // emit from the first byte where the two differ.
  size_t common = 0;
  const size_t limit = std::min(prefix_text.size(), new_text.size());
  while (common < limit && prefix_text[common] == new_text[common]) ++common;
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return new_text.substr(common);
}

std::string IncrementalDecoder::finish() {
  const std::span<const int32_t> all(ids_);
  const std::string prefix_text =
      tokenizer_.decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string new_text = tokenizer_.decode(all.subspan(prefix_offset_), skip_special_);
  prefix_offset_ = read_offset_ = ids_.size();
  if (new_text.size() <= prefix_text.size()) return {};
  return new_text.substr(std::min(prefix_text.size(), new_text.size()));
}

}  // namespace nibble
