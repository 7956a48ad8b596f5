#pragma once
// OpenAI response objects: chat.completion, chat.completion.chunk,
// text_completion, their logprobs shapes and usage.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/api/text_decoder.h"
#include "nibble/scheduler/request.h"

namespace nibble::api {

// What every object of one response shares (identical across a stream's chunks).
struct ResponseHeader {
  std::string id;
  int64_t created = 0;
  std::string model;
  std::string system_fingerprint;
};

// "chatcmpl-…", "cmpl-…": prefix + 24 random hex digits.
std::string make_response_id(const std::string& prefix);
int64_t unix_time_now();

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_tokens = 0;
};
nlohmann::json usage_json(const Usage& usage);

// Chat logprobs entries ({token, logprob, bytes, top_logprobs}) for tokens.
nlohmann::json chat_logprobs_content(const std::vector<TokenLogprob>& logprobs, const TextCodec& codec);

// Completions logprobs ({tokens, token_logprobs, top_logprobs, text_offset}),
// built up as tokens arrive.
class CompletionLogprobs {
 public:
  void append(const std::vector<TokenLogprob>& logprobs, const std::vector<size_t>& text_offsets,
              size_t offset_base, const TextCodec& codec, int top_n);
  // Echoed prompt tokens carry no logprob (null) and no alternatives.
  void append_prompt(const std::vector<int32_t>& prompt, const TextCodec& codec);
  nlohmann::json to_json() const;
  bool empty() const { return tokens_.empty(); }

 private:
  nlohmann::json tokens_ = nlohmann::json::array();
  nlohmann::json token_logprobs_ = nlohmann::json::array();
  nlohmann::json top_logprobs_ = nlohmann::json::array();
  nlohmann::json text_offset_ = nlohmann::json::array();
};

struct ChatChoice {
  int index = 0;
  std::string content;
  std::string finish_reason;
  std::optional<nlohmann::json> logprobs_content;  // array, when logprobs were asked
};
nlohmann::json chat_completion_json(const ResponseHeader& header, const std::vector<ChatChoice>& choices,
                                    const Usage& usage);

// One chat.completion.chunk with a single choice. delta holds role and/or
// content; logprobs_content is the chunk's logprobs entries (null when not asked).
nlohmann::json chat_chunk_json(const ResponseHeader& header, int index, const nlohmann::json& delta,
                               const nlohmann::json& logprobs_content, const std::optional<std::string>& finish_reason,
                               bool usage_null);
// The final chunk of include_usage: empty choices and the usage.
nlohmann::json chat_usage_chunk_json(const ResponseHeader& header, const Usage& usage);

struct CompletionChoice {
  int index = 0;
  std::string text;
  std::string finish_reason;
  std::optional<nlohmann::json> logprobs;
};
nlohmann::json text_completion_json(const ResponseHeader& header, const std::vector<CompletionChoice>& choices,
                                    const Usage& usage);
nlohmann::json completion_chunk_json(const ResponseHeader& header, int index, const std::string& text,
                                     const nlohmann::json& logprobs, const std::optional<std::string>& finish_reason,
                                     bool usage_null);
nlohmann::json completion_usage_chunk_json(const ResponseHeader& header, const Usage& usage);

}  // namespace nibble::api
