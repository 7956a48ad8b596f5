#pragma once
// The text side of generated tokens, as the output path needs it: streaming
// detokenization plus per-token strings for logprobs. The production version
// wraps the tokenizer's IncrementalDecoder; tests substitute their own.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace nibble {
class Tokenizer;
}

namespace nibble::api {

class TextStreamDecoder {
 public:
  virtual ~TextStreamDecoder() = default;
  // Text that became complete UTF-8 with this token (possibly empty).
  virtual std::string push(int32_t token) = 0;
  // Whatever is still held back.
  virtual std::string finish() = 0;
};

// Everything the output path needs from a tokenizer.
class TextCodec {
 public:
  virtual ~TextCodec() = default;
  // A streaming decoder primed with the prompt's ids (for leading-space handling).
  virtual std::unique_ptr<TextStreamDecoder> stream_decoder(std::span<const int32_t> prompt,
                                                            bool skip_special_tokens) const = 0;
  // One token's text, for logprobs ("token" and "bytes").
  virtual std::string token_text(int32_t token) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;
};

// The TextCodec of a real tokenizer (IncrementalDecoder-based). The tokenizer must outlive it.
std::unique_ptr<TextCodec> make_tokenizer_codec(const Tokenizer& tokenizer);

}  // namespace nibble::api
