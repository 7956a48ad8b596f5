#include "nibble/tokenizer/dummy_tokenizer.h"

#include <algorithm>
#include <charconv>

#include "nibble/core/error.h"
#include "nibble/tokenizer/demo_tokenizer.h"

namespace nibble {
namespace {

// The demo tokenizer's size for dummy models: big enough for real merges,
// small enough to train in well under a second.
constexpr int kDemoVocabulary = 2048;
constexpr std::string_view kPlaceholderPrefix = "<id_";

class PaddedTokenizer final : public Tokenizer {
 public:
  PaddedTokenizer(std::unique_ptr<Tokenizer> base, int vocab_size)
      : base_(std::move(base)), base_size_(base_->vocab_size()), vocab_size_(vocab_size) {}

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override {
    return base_->encode(text, add_special_tokens);
  }

  // Runs of base ids decode together (keeping multi-byte characters and
  // spacing intact); padded ids become placeholders between them.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override {
    std::string text;
    size_t run_begin = 0;
    for (size_t i = 0; i <= ids.size(); ++i) {
      if (i < ids.size() && !padded(ids[i])) continue;
      if (i > run_begin) text += base_->decode(ids.subspan(run_begin, i - run_begin), skip_special_tokens);
      if (i < ids.size()) text += dummy_token_placeholder(ids[i]);
      run_begin = i + 1;
    }
    return text;
  }

  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    if (auto id = base_->token_to_id(token)) return id;
    if (token.size() < kPlaceholderPrefix.size() + 2 || !token.starts_with(kPlaceholderPrefix) || !token.ends_with('>'))
      return std::nullopt;
    int32_t id = 0;
    const char* first = token.data() + kPlaceholderPrefix.size();
    const char* last = token.data() + token.size() - 1;
    auto [end, ec] = std::from_chars(first, last, id);
    if (ec != std::errc() || end != last || !padded(id)) return std::nullopt;
    return id;
  }
  std::optional<std::string> id_to_token(int32_t id) const override {
    if (padded(id)) return dummy_token_placeholder(id);
    return base_->id_to_token(id);
  }
  bool is_special(int32_t id) const override { return !padded(id) && base_->is_special(id); }
  bool is_byte_fallback(int32_t id) const override { return !padded(id) && base_->is_byte_fallback(id); }

  std::optional<std::string> bos_token() const override { return base_->bos_token(); }
  std::optional<std::string> eos_token() const override { return base_->eos_token(); }
  std::optional<std::string> chat_template() const override { return base_->chat_template(); }
  const nlohmann::json& special_tokens_map() const override { return base_->special_tokens_map(); }
  std::vector<int32_t> eos_token_ids() const override { return base_->eos_token_ids(); }

 private:
  bool padded(int32_t id) const { return id >= base_size_ && id < vocab_size_; }

  std::unique_ptr<Tokenizer> base_;
  int base_size_;
  int vocab_size_;
};

}  // namespace

std::string dummy_token_placeholder(int32_t id) { return std::string(kPlaceholderPrefix) + std::to_string(id) + ">"; }

std::unique_ptr<Tokenizer> pad_vocabulary(std::unique_ptr<Tokenizer> base, int vocab_size) {
  if (base->vocab_size() >= vocab_size) return base;
  return std::make_unique<PaddedTokenizer>(std::move(base), vocab_size);
}

std::unique_ptr<Tokenizer> make_dummy_tokenizer(int vocab_size) {
  if (vocab_size < 300)
    throw Error("dummy tokenizer: vocab_size " + std::to_string(vocab_size) +
                " is below 300; put a tokenizer.json beside the config");
  DemoTokenizerFiles files = make_demo_tokenizer(std::min(vocab_size, kDemoVocabulary));
  auto base = Tokenizer::from_json_text(files.tokenizer_json, files.tokenizer_config_json, "dummy tokenizer");
  return pad_vocabulary(std::move(base), vocab_size);
}

}  // namespace nibble
