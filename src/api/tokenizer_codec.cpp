// Kept in its own translation unit: it is the only part of api/ that needs the
// tokenizer library's code, so unit tests with fakes link without it.
#include "nibble/api/text_decoder.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::api {
namespace {

class IncrementalStreamDecoder : public TextStreamDecoder {
 public:
  IncrementalStreamDecoder(const Tokenizer& tokenizer, std::span<const int32_t> prompt, bool skip_special)
      : decoder_(tokenizer, skip_special) {
    decoder_.set_prefix(prompt);
  }
  std::string push(int32_t token) override { return decoder_.push(token); }
  std::string finish() override { return decoder_.finish(); }

 private:
  IncrementalDecoder decoder_;
};

class TokenizerCodec : public TextCodec {
 public:
  explicit TokenizerCodec(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::unique_ptr<TextStreamDecoder> stream_decoder(std::span<const int32_t> prompt,
                                                    bool skip_special_tokens) const override {
    return std::make_unique<IncrementalStreamDecoder>(tokenizer_, prompt, skip_special_tokens);
  }
  std::string token_text(int32_t token) const override {
    return tokenizer_.decode(std::span<const int32_t>(&token, 1), false);
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    return tokenizer_.decode(ids, skip_special_tokens);
  }

 private:
  const Tokenizer& tokenizer_;
};

}  // namespace

std::unique_ptr<TextCodec> make_tokenizer_codec(const Tokenizer& tokenizer) {
  return std::make_unique<TokenizerCodec>(tokenizer);
}

}  // namespace nibble::api
