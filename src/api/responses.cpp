#include "nibble/api/responses.h"

#include <chrono>
#include <random>

#include <fmt/format.h>

namespace nibble::api {

using nlohmann::json;

std::string make_response_id(const std::string& prefix) {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

int64_t unix_time_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

namespace {

json bytes_of(const std::string& s) {
  json bytes = json::array();
  for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
  return bytes;
}

// Token text as a JSON-safe string: invalid UTF-8 (a partial byte-level token)
// becomes U+FFFD; "bytes" keeps the raw bytes.
std::string printable(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

json token_string(const std::string& s) { return json::parse(printable(s)); }

json header_fields(const ResponseHeader& h, const char* object) {
  return {{"id", h.id},
          {"object", object},
          {"created", h.created},
          {"model", h.model},
          {"system_fingerprint", h.system_fingerprint}};
}

}  // namespace

json chat_logprobs_content(const std::vector<TokenLogprob>& logprobs, const TextCodec& codec) {
  json content = json::array();
  for (const auto& lp : logprobs) {
    std::string text = codec.token_text(lp.token);
    json top = json::array();
    for (const auto& [id, value] : lp.top) {
      std::string alt = codec.token_text(id);
      top.push_back({{"token", token_string(alt)}, {"logprob", value}, {"bytes", bytes_of(alt)}});
    }
    content.push_back(
        {{"token", token_string(text)}, {"logprob", lp.logprob}, {"bytes", bytes_of(text)}, {"top_logprobs", top}});
  }
  return content;
}

void CompletionLogprobs::append(const std::vector<TokenLogprob>& logprobs, const std::vector<size_t>& text_offsets,
                                size_t offset_base, const TextCodec& codec, int top_n) {
  for (size_t i = 0; i < logprobs.size(); ++i) {
    const auto& lp = logprobs[i];
    tokens_.push_back(token_string(codec.token_text(lp.token)));
    token_logprobs_.push_back(lp.logprob);
    json top = json::object();
    for (size_t k = 0; k < lp.top.size() && static_cast<int>(k) < top_n; ++k)
      top[token_string(codec.token_text(lp.top[k].first)).get<std::string>()] = lp.top[k].second;
    top_logprobs_.push_back(top);
    text_offset_.push_back(offset_base + (i < text_offsets.size() ? text_offsets[i] : 0));
  }
}

void CompletionLogprobs::append_prompt(const std::vector<int32_t>& prompt, const TextCodec& codec) {
  size_t offset = 0;
  for (int32_t token : prompt) {
    std::string text = codec.token_text(token);
    tokens_.push_back(token_string(text));
    token_logprobs_.push_back(nullptr);
    top_logprobs_.push_back(nullptr);
    text_offset_.push_back(offset);
    offset += codec.decode(std::span<const int32_t>(&token, 1), true).size();  // special tokens take no text
  }
}

json CompletionLogprobs::to_json() const {
  return {{"tokens", tokens_}, {"token_logprobs", token_logprobs_}, {"top_logprobs", top_logprobs_},
          {"text_offset", text_offset_}};
}

json chat_completion_json(const ResponseHeader& header, const std::vector<ChatChoice>& choices, const Usage& usage) {
  json out = header_fields(header, "chat.completion");
  json list = json::array();
  for (const auto& c : choices) {
    json logprobs = c.logprobs_content ? json{{"content", *c.logprobs_content}, {"refusal", nullptr}} : json(nullptr);
    list.push_back({{"index", c.index},
                    {"message", {{"role", "assistant"}, {"content", c.content}, {"refusal", nullptr}}},
                    {"logprobs", logprobs},
                    {"finish_reason", c.finish_reason}});
  }
  out["choices"] = list;
  out["usage"] = usage_json(usage);
  return out;
}

json chat_chunk_json(const ResponseHeader& header, int index, const json& delta, const json& logprobs_content,
                     const std::optional<std::string>& finish_reason, bool usage_null) {
  json out = header_fields(header, "chat.completion.chunk");
  json logprobs = logprobs_content.is_null() ? json(nullptr) : json{{"content", logprobs_content}, {"refusal", nullptr}};
  out["choices"] = json::array({{{"index", index},
                                 {"delta", delta},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}}});
  if (usage_null) out["usage"] = nullptr;
  return out;
}

json chat_usage_chunk_json(const ResponseHeader& header, const Usage& usage) {
  json out = header_fields(header, "chat.completion.chunk");
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

json text_completion_json(const ResponseHeader& header, const std::vector<CompletionChoice>& choices,
                          const Usage& usage) {
  json out = header_fields(header, "text_completion");
  json list = json::array();
  for (const auto& c : choices)
    list.push_back({{"index", c.index},
                    {"text", c.text},
                    {"logprobs", c.logprobs ? *c.logprobs : json(nullptr)},
                    {"finish_reason", c.finish_reason}});
  out["choices"] = list;
  out["usage"] = usage_json(usage);
  return out;
}

json completion_chunk_json(const ResponseHeader& header, int index, const std::string& text, const json& logprobs,
                           const std::optional<std::string>& finish_reason, bool usage_null) {
  json out = header_fields(header, "text_completion");
  out["choices"] = json::array({{{"index", index},
                                 {"text", text},
                                 {"logprobs", logprobs},
                                 {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}}});
  if (usage_null) out["usage"] = nullptr;
  return out;
}

json completion_usage_chunk_json(const ResponseHeader& header, const Usage& usage) {
  json out = header_fields(header, "text_completion");
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

}  // namespace nibble::api
