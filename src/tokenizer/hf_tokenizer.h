#pragma once
// The Tokenizer built from a tokenizer.json: added tokens -> normalizer -> pre-tokenizer
// -> BPE model -> post-processor, and the decoder for the way back.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "added_vocabulary.h"
#include "bpe_model.h"
#include "decoder.h"
#include "nibble/tokenizer/tokenizer.h"
#include "normalizer.h"
#include "post_processor.h"
#include "pre_tokenizer.h"
#include "tokenizer_config.h"

namespace nibble::tokenizer_detail {

class HfTokenizer final : public Tokenizer {
 public:
  // `name` (usually the file path) labels error messages.
  // `tables` holds model.vocab / model.merges when parse_tokenizer_json took them out of `spec`.
  HfTokenizer(const nlohmann::json& spec, BpeTables tables, TokenizerConfig config, const std::string& name);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  bool is_byte_fallback(int32_t id) const override { return model_->is_byte_fallback(id); }
  std::optional<std::string> bos_token() const override { return config_.bos_token; }
  std::optional<std::string> eos_token() const override { return config_.eos_token; }
  std::optional<std::string> chat_template() const override { return config_.chat_template; }
  const nlohmann::json& special_tokens_map() const override { return config_.special_tokens; }
  std::vector<int32_t> eos_token_ids() const override;

 private:
  void encode_segment(std::string_view segment, bool at_start, std::vector<int32_t>& ids) const;
  void apply_config_post_processor(const std::string& name);

  TokenizerConfig config_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  int vocab_size_ = 0;
};

}  // namespace nibble::tokenizer_detail
