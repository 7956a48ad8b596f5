#pragma once
// A byte-level fake tokenizer for tests: ids 0..255 are bytes, 256 is <s>,
// 257 is </s>. Multi-byte UTF-8 characters span several tokens, which is what
// the streaming and stop-string logic must handle.
#include <nlohmann/json.hpp>

#include "nibble/api/text_decoder.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::fakes {

constexpr int32_t kByteBos = 256;
constexpr int32_t kByteEos = 257;

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  int vocab_size() const override { return 258; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override { return id >= 256; }
  std::optional<std::string> bos_token() const override { return "<s>"; }
  std::optional<std::string> eos_token() const override { return "</s>"; }
  std::optional<std::string> chat_template() const override { return std::nullopt; }
  const nlohmann::json& special_tokens_map() const override { return special_; }
  std::vector<int32_t> eos_token_ids() const override { return {kByteEos}; }

 private:
  nlohmann::json special_ = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
};

class ByteCodec : public api::TextCodec {
 public:
  std::unique_ptr<api::TextStreamDecoder> stream_decoder(std::span<const int32_t> prompt,
                                                         bool skip_special_tokens) const override;
  std::string token_text(int32_t token) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;

 private:
  ByteTokenizer tokenizer_;
};

}  // namespace nibble::fakes
