#pragma once
// A tokenizer loaded from a Hugging Face tokenizer.json (+ tokenizer_config.json),
// matching the Hugging Face `tokenizers` library id for id.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Loads tokenizer.json; tokenizer_config.json beside it (if present) gives
  // bos/eos/pad tokens, add_bos_token/add_eos_token and the chat template.
  static std::unique_ptr<Tokenizer> from_file(const std::filesystem::path& tokenizer_json);
  // Loads DIR/tokenizer.json and DIR/tokenizer_config.json.
  static std::unique_ptr<Tokenizer> from_model_dir(const std::filesystem::path& model_dir);
  // Loads tokenizer.json with an explicit tokenizer_config.json (nullopt: none, so
  // ids are exactly those of the Hugging Face `tokenizers` library for the file).
  static std::unique_ptr<Tokenizer> from_files(const std::filesystem::path& tokenizer_json,
                                               const std::optional<std::filesystem::path>& tokenizer_config);
  // Loads from in-memory texts; config_json may be empty. `name` labels errors.
  static std::unique_ptr<Tokenizer> from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                                   const std::string& name);

  // add_special_tokens applies the post-processor (BOS/EOS) as HF does.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;

  virtual int vocab_size() const = 0;  // highest id + 1, added tokens included
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(int32_t id) const = 0;  // raw vocab string
  virtual bool is_special(int32_t id) const = 0;
  // Whether the id is a SentencePiece byte-fallback token (<0xNN>) that the decoder turns
  // into a raw byte. A later byte token can turn such a run into U+FFFD, so streaming
  // holds text back while the last token is one of these.
  virtual bool is_byte_fallback(int32_t id) const {
    (void)id;
    return false;
  }

  // From tokenizer_config.json (empty / nullopt when absent).
  virtual std::optional<std::string> bos_token() const = 0;
  virtual std::optional<std::string> eos_token() const = 0;
  virtual std::optional<std::string> chat_template() const = 0;
  // Every named special token of tokenizer_config.json (bos_token, eos_token,
  // pad_token, unk_token, ...) as name -> text, for chat templates.
  virtual const nlohmann::json& special_tokens_map() const = 0;
  virtual std::vector<int32_t> eos_token_ids() const = 0;
};

// Streaming detokenization: push ids one at a time, get text as soon as it is
// complete UTF-8. The concatenation of every push() and finish() equals
// tokenizer.decode(all ids, skip_special_tokens).
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);
  // Optionally seed with prompt ids so the first generated piece decodes with
  // the right leading-space handling (as HF decode of prompt + output would).
  void set_prefix(std::span<const int32_t> prefix_ids);
  std::string push(int32_t id);
  std::string finish();  // whatever is held back (incomplete UTF-8 as U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
};

}  // namespace nibble
