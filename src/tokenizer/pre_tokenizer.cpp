#include "pre_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

#include "byte_level.h"
#include "json_fields.h"
#include "pattern.h"
#include "utf8.h"

namespace nibble::tokenizer_detail {

std::vector<Span> split_by_matches(size_t text_size, const std::vector<Span>& matches, SplitBehavior behavior,
                                   bool invert) {
  // Cover the whole text with (span, is_match) parts.
  std::vector<std::pair<Span, bool>> parts;
  if (text_size == 0) {
    parts.push_back({{0, 0}, false});
  } else {
    size_t prev = 0;
    for (const auto& m : matches) {
      if (prev != m.first) parts.push_back({{prev, m.first}, false});
      parts.push_back({m, true});
      prev = m.second;
    }
    if (prev != text_size) parts.push_back({{prev, text_size}, false});
  }
  if (invert) {
    for (auto& p : parts) p.second = !p.second;
  }
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& [span, is_match] : parts) {
        if (!is_match) out.push_back(span);
      }
      break;
    case SplitBehavior::Isolated:
      for (const auto& p : parts) out.push_back(p.first);
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& [span, is_match] : parts) {
        if (is_match && !previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->second && !previous_match && !out.empty()) {
          out.back().first = it->first.first;
        } else {
          out.push_back(it->first);
        }
        previous_match = it->second;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::Contiguous:
      for (const auto& [span, is_match] : parts) {
        if (is_match == previous_match && !out.empty()) {
          out.back().second = span.second;
        } else {
          out.push_back(span);
        }
        previous_match = is_match;
      }
      break;
  }
  return out;
}

namespace {

SplitBehavior parse_behavior(const nlohmann::json& spec, const std::string& where, SplitBehavior fallback) {
  const std::string b = optional_string(spec, "behavior", where, "");
  if (b.empty()) return fallback;
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  throw Error(where + ".behavior: unknown split behavior \"" + b + "\"");
}

// Applies a split function to every piece; only the first sub-piece keeps at_start.
void split_pieces(std::vector<Piece>& pieces, SplitBehavior behavior, bool invert,
                  const std::function<std::vector<Span>(std::string_view)>& find) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& piece : pieces) {
    const auto spans = split_by_matches(piece.text.size(), find(piece.text), behavior, invert);
    for (const auto& [begin, end] : spans) {
      if (end == begin) continue;
      out.push_back({piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
    }
  }
  pieces = std::move(out);
}

// Spans of maximal runs of code points satisfying `pred`, or of each such code point.
std::vector<Span> char_runs(std::string_view text, const std::function<bool(char32_t)>& pred, bool each) {
  std::vector<Span> spans;
  size_t i = 0;
  while (i < text.size()) {
    const size_t begin = i;
    const char32_t cp = next_code_point(text, i);
    if (!pred(cp)) continue;
    if (!each && !spans.empty() && spans.back().second == begin) {
      spans.back().second = i;
    } else {
      spans.emplace_back(begin, i);
    }
  }
  return spans;
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, behavior_, invert_, [this](std::string_view t) { return pattern_.find_all(t); });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2SplitRegex, where);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    if (add_prefix_space_) {
      for (auto& p : pieces) {
        if (!p.text.empty() && p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (regex_) {
      split_pieces(pieces, SplitBehavior::Isolated, false, [this](std::string_view t) { return regex_->find_all(t); });
    }
    for (auto& p : pieces) p.text = bytes_to_byte_level(p.text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& p : pieces) {
      p.text = Pattern(std::string(" ")).replace_all(p.text, replacement_);
      const bool starts = p.text.rfind(replacement_, 0) == 0;
      if (!starts && !p.text.empty() &&
          (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && p.at_start))) {
        p.text.insert(0, replacement_);
      }
    }
    if (split_) {
      split_pieces(pieces, SplitBehavior::MergedWithNext, false,
                   [this](std::string_view t) { return find_all_literal(t, replacement_); });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class CharClassPreTokenizer : public PreTokenizer {
 public:
  CharClassPreTokenizer(std::function<bool(char32_t)> pred, bool each, SplitBehavior behavior)
      : pred_(std::move(pred)), each_(each), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, behavior_, false, [this](std::string_view t) { return char_runs(t, pred_, each_); });
  }

 private:
  std::function<bool(char32_t)> pred_;
  bool each_;
  SplitBehavior behavior_;
};

// Rust's char::is_numeric: general categories Nd, Nl and No.
bool is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(char32_t cp) {
  if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

PrependScheme parse_prepend_scheme(const nlohmann::json& spec, const std::string& where) {
  if (spec.contains("prepend_scheme") && !spec["prepend_scheme"].is_null()) {
    const std::string s = require_string(spec, "prepend_scheme", where);
    if (s == "always") return PrependScheme::Always;
    if (s == "first") return PrependScheme::First;
    if (s == "never") return PrependScheme::Never;
    throw Error(where + ".prepend_scheme: unknown value \"" + s + "\" (expected always, first or never)");
  }
  // Older files: add_prefix_space true means "always".
  return optional_bool(spec, "add_prefix_space", where, true) ? PrependScheme::Always : PrependScheme::Never;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern(require_field(spec, "pattern", where), where + ".pattern"),
                                               parse_behavior(spec, where, SplitBehavior::Isolated),
                                               optional_bool(spec, "invert", where, false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(optional_bool(spec, "add_prefix_space", where, true),
                                                   optional_bool(spec, "use_regex", where, true), where);
  }
  if (type == "Metaspace") {
    std::string replacement = optional_string(spec, "replacement", where, "\xE2\x96\x81");
    if (replacement.empty() || utf8_sequence_length(static_cast<unsigned char>(replacement[0])) != replacement.size()) {
      throw Error(where + ".replacement: must be a single character, got \"" + replacement + "\"");
    }
    return std::make_unique<MetaspacePreTokenizer>(std::move(replacement), parse_prepend_scheme(spec, where),
                                                   optional_bool(spec, "split", where, true));
  }
  if (type == "Digits") {
    const bool individual = optional_bool(spec, "individual_digits", where, false);
    return std::make_unique<CharClassPreTokenizer>(is_numeric, individual,
                                                   individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharClassPreTokenizer>(is_whitespace, false, SplitBehavior::Removed);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharClassPreTokenizer>(is_punctuation, true,
                                                   parse_behavior(spec, where, SplitBehavior::Isolated));
  }
  if (type == "Whitespace") {
    nlohmann::json pattern = {{"Regex", "\\w+|[^\\w\\s]+"}};
    return std::make_unique<SplitPreTokenizer>(Pattern(pattern, where), SplitBehavior::Removed, true);
  }
  if (type == "Sequence") {
    const auto& list = require_array(spec, "pretokenizers", where);
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  throw Error(where + ": unsupported pre_tokenizer type \"" + type + "\"");
}

}  // namespace nibble::tokenizer_detail
