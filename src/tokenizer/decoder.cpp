#include "decoder.h"

#include <nlohmann/json.hpp>

#include "byte_level.h"
#include "json_fields.h"
#include "pattern.h"
#include "utf8.h"

namespace nibble::tokenizer_detail {

namespace {

// All tokens' characters back to bytes, then one lossy UTF-8 conversion. A token with
// a character outside the byte map (an added token, say) contributes its own UTF-8.
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      const size_t mark = bytes.size();
      bool mapped = true;
      size_t i = 0;
      while (i < token.size()) {
        const auto b = byte_level_byte(next_code_point(token, i));
        if (!b) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(*b));
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes.append(token);
      }
    }
    tokens.assign(1, to_valid_utf8(bytes));
  }
};

// <0xNN> tokens become bytes; a run of them that is not valid UTF-8 becomes one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back(kReplacementChar);
      }
      pending.clear();
    };
    for (auto& token : tokens) {
      if (auto byte = parse_byte_token(token)) {
        pending.push_back(static_cast<char>(*byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static std::optional<int> parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
    int value = 0;
    for (int k = 3; k < 5; ++k) {
      const char c = t[k];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return std::nullopt;
      value = value * 16 + d;
    }
    return value;
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const auto& t : tokens) joined.append(t);
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const size_t n = content_.size();
    for (auto& token : tokens) {
      size_t begin = 0;
      for (size_t k = 0; k < start_ && token.compare(begin, n, content_) == 0 && begin + n <= token.size(); ++k) {
        begin += n;
      }
      size_t end = token.size();
      for (size_t k = 0; k < stop_ && end >= begin + n && token.compare(end - n, n, content_) == 0; ++k) end -= n;
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// The replacement character becomes a space; in the first token it is dropped unless
// the prepend scheme is "never".
class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first)
      : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = Pattern(replacement_).replace_all(tokens[i], i == 0 && drop_in_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

size_t optional_count(const nlohmann::json& spec, const char* key, const std::string& where) {
  if (!spec.contains(key) || spec[key].is_null()) return 0;
  if (!spec[key].is_number_unsigned() && !(spec[key].is_number_integer() && spec[key].get<int64_t>() >= 0)) {
    throw Error(where + "." + key + ": expected a non-negative integer, got " + spec[key].dump());
  }
  return spec[key].get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where) {
  if (spec.is_null()) return nullptr;
  const std::string type = type_of(spec, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = require_string(spec, "content", where);
    if (content.empty()) throw Error(where + ".content: must be one character");
    return std::make_unique<StripDecoder>(content, optional_count(spec, "start", where),
                                          optional_count(spec, "stop", where));
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern(require_field(spec, "pattern", where), where + ".pattern"),
                                            require_string(spec, "content", where));
  }
  if (type == "Metaspace") {
    bool drop = optional_bool(spec, "add_prefix_space", where, true);
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      drop = spec["prepend_scheme"].get<std::string>() != "never";
    }
    return std::make_unique<MetaspaceDecoder>(optional_string(spec, "replacement", where, "\xE2\x96\x81"), drop);
  }
  if (type == "Sequence") {
    const auto& list = require_array(spec, "decoders", where);
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list.size(); ++i) {
      auto part = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
      if (part) parts.push_back(std::move(part));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  throw Error(where + ": unsupported decoder type \"" + type + "\"");
}

}  // namespace nibble::tokenizer_detail
