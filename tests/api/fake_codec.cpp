#include "fake_codec.h"

namespace nibble::fakes {
namespace {

// Length of the complete UTF-8 prefix of s.
size_t complete_utf8_prefix(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + len > s.size()) break;
    i += len;
  }
  return i;
}

class ByteStreamDecoder : public api::TextStreamDecoder {
 public:
  explicit ByteStreamDecoder(bool skip_special) : skip_special_(skip_special) {}
  std::string push(int32_t token) override {
    if (token >= 256) {
      if (skip_special_) return "";
      held_ += token == kByteBos ? "<s>" : "</s>";
    } else {
      held_ += static_cast<char>(token);
    }
    size_t n = complete_utf8_prefix(held_);
    std::string out = held_.substr(0, n);
    held_.erase(0, n);
    return out;
  }
  std::string finish() override {
    std::string out;
    for (size_t i = 0; i < held_.size(); ++i) out += "\xEF\xBF\xBD";
    held_.clear();
    return out;
  }

 private:
  bool skip_special_;
  std::string held_;
};

}  // namespace

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids.push_back(kByteBos);
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 256) {
      if (!skip_special_tokens) out += id == kByteBos ? "<s>" : "</s>";
    } else if (id >= 0) {
      out += static_cast<char>(id);
    }
  }
  return out;
}

std::optional<int32_t> ByteTokenizer::token_to_id(std::string_view token) const {
  if (token == "<s>") return kByteBos;
  if (token == "</s>") return kByteEos;
  if (token.size() == 1) return static_cast<unsigned char>(token[0]);
  return std::nullopt;
}

std::optional<std::string> ByteTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return std::nullopt;
  return decode(std::span<const int32_t>(&id, 1), false);
}

std::unique_ptr<api::TextStreamDecoder> ByteCodec::stream_decoder(std::span<const int32_t>,
                                                                  bool skip_special_tokens) const {
  return std::make_unique<ByteStreamDecoder>(skip_special_tokens);
}

std::string ByteCodec::token_text(int32_t token) const {
  return tokenizer_.decode(std::span<const int32_t>(&token, 1), false);
}

std::string ByteCodec::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  return tokenizer_.decode(ids, skip_special_tokens);
}

}  // namespace nibble::fakes
