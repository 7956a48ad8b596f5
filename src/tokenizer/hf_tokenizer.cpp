#include "hf_tokenizer.h"

#include <algorithm>

#include "json_fields.h"
#include "utf8.h"

namespace nibble::tokenizer_detail {

HfTokenizer::HfTokenizer(const nlohmann::json& spec, BpeTables tables, TokenizerConfig config,
                         const std::string& name)
    : config_(std::move(config)) {
  if (!spec.is_object()) throw Error(name + ": expected a JSON object at the top level");
  const auto& model = require_field(spec, "model", name);
  const std::string model_type = optional_string(model, "type", name + ".model", "BPE");
  if (model_type != "BPE") {
    throw Error(name + ".model.type: unsupported model \"" + model_type + "\" (nibble supports BPE tokenizers)");
  }
  normalizer_ = make_normalizer(spec.value("normalizer", nlohmann::json()), name + ".normalizer");
  pre_tokenizer_ = make_pre_tokenizer(spec.value("pre_tokenizer", nlohmann::json()), name + ".pre_tokenizer");
  model_ = std::make_unique<BpeModel>(model, std::move(tables), name + ".model");
  post_processor_ = make_post_processor(spec.value("post_processor", nlohmann::json()), name + ".post_processor");
  decoder_ = make_decoder(spec.value("decoder", nlohmann::json()), name + ".decoder");
  added_ = AddedVocabulary(
      spec.value("added_tokens", nlohmann::json()), normalizer_.get(),
      [this](std::string_view t) { return model_->token_to_id(t); }, model_->vocab_len(), name + ".added_tokens");

  vocab_size_ = model_->max_id() + 1;
  for (const auto& t : added_.tokens()) vocab_size_ = std::max(vocab_size_, t.id + 1);
  apply_config_post_processor(name);
}

void HfTokenizer::apply_config_post_processor(const std::string& name) {
  if (!class_rewrites_post_processor(config_.tokenizer_class)) return;
  // These classes call update_post_processor() in __init__ with add_bos_token defaulting
  // to true and add_eos_token to false.
  const bool add_bos = config_.add_bos_token.value_or(true);
  const bool add_eos = config_.add_eos_token.value_or(false);
  const bool explicit_flags = config_.add_bos_token || config_.add_eos_token;
  auto resolve = [&](const std::optional<std::string>& token, const char* what) -> std::optional<int32_t> {
    if (!token) throw Error(name + ": tokenizer_config.json sets add_" + what + "_token but has no " + what + "_token");
    auto id = token_to_id(*token);
    if (!id) throw Error(name + ": " + what + "_token \"" + *token + "\" is not in the vocabulary");
    return id;
  };
  if (!explicit_flags && (!config_.bos_token || !token_to_id(*config_.bos_token))) return;
  std::optional<int32_t> bos, eos;
  if (add_bos) bos = resolve(config_.bos_token, "bos");
  if (add_eos) eos = resolve(config_.eos_token, "eos");
  post_processor_ = make_bos_eos_processor(bos, eos);
}

void HfTokenizer::encode_segment(std::string_view segment, bool at_start, std::vector<int32_t>& ids) const {
  std::string normalized(segment);
  if (normalizer_) normalizer_->normalize(normalized);
  std::vector<Piece> pieces;
  for (const auto& split : added_.split(normalized, true)) {
    if (split.id) {
      ids.push_back(*split.id);
      continue;
    }
    const auto [begin, end] = split.span;
    if (begin == end) continue;
    pieces.clear();
    pieces.push_back({normalized.substr(begin, end - begin), at_start && begin == 0});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    for (const auto& piece : pieces) model_->tokenize(piece.text, ids);
  }
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const std::string clean = to_valid_utf8(text);
  std::vector<int32_t> ids;
  ids.reserve(clean.size() / 3 + 4);
  for (const auto& split : added_.split(clean, false)) {
    if (split.id) {
      ids.push_back(*split.id);
      continue;
    }
    const auto [begin, end] = split.span;
    if (begin == end) continue;
    encode_segment(std::string_view(clean).substr(begin, end - begin), begin == 0, ids);
  }
  if (add_special_tokens && post_processor_) post_processor_->process(ids);
  return ids;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const AddedToken* t = added_.find(id)) {
      if (!(skip_special_tokens && t->special)) tokens.push_back(t->decoded);
    } else if (const std::string* s = model_->id_to_token(id)) {
      tokens.push_back(*s);
    }
  }
  std::string out;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (const auto& t : tokens) out.append(t);
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out.append(tokens[i]);
    }
  }
  return out;
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  if (auto id = added_.token_to_id(token)) return id;
  return model_->token_to_id(token);
}

std::optional<std::string> HfTokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = added_.find(id)) return t->decoded;
  if (const std::string* s = model_->id_to_token(id)) return *s;
  return std::nullopt;
}

bool HfTokenizer::is_special(int32_t id) const {
  const AddedToken* t = added_.find(id);
  return t != nullptr && t->special;
}

std::vector<int32_t> HfTokenizer::eos_token_ids() const {
  std::vector<int32_t> ids;
  if (config_.eos_token) {
    if (auto id = token_to_id(*config_.eos_token)) ids.push_back(*id);
  }
  for (int32_t id : config_.extra_eos_ids) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

}  // namespace nibble::tokenizer_detail
