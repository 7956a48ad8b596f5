#pragma once
// OpenAI request bodies for /v1/chat/completions and /v1/completions, parsed
// and validated into structs. Parsing throws ApiError (400, naming the field)
// for anything malformed; unknown fields are ignored.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/scheduler/request.h"

namespace nibble::api {

// What the parser needs to know about the served model.
struct ModelLimits {
  int vocab_size = 0;
  int max_model_len = 0;
};

// Fields shared by both endpoints.
struct GenerationOptions {
  std::string model;
  std::optional<long long> max_tokens;  // absent: up to the remaining context
  int n = 1;
  SamplingParams sampling;
  StopParams stop;  // max_tokens is filled in once the prompt length is known
  std::vector<std::string> stop_strings;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<std::string> user;
};

struct ChatCompletionRequest {
  GenerationOptions options;
  nlohmann::json messages;  // validated OpenAI messages, content normalised to strings
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::json chat_template_kwargs = nlohmann::json::object();
  bool logprobs = false;
  int top_logprobs = 0;
};

using PromptInput = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequest {
  GenerationOptions options;
  std::vector<PromptInput> prompts;  // one engine request per prompt
  bool echo = false;
  std::optional<int> logprobs;       // number of top alternatives (0..20)
};

ChatCompletionRequest parse_chat_completion_request(const nlohmann::json& body, const ModelLimits& limits);
CompletionRequest parse_completion_request(const nlohmann::json& body, const ModelLimits& limits);

// Parses a request body; malformed JSON or invalid UTF-8 becomes a 400.
nlohmann::json parse_json_body(const std::string& body);

// Resolves max_tokens against the context: prompt + max_tokens must fit in
// max_model_len (400 context_length_exceeded otherwise); absent max_tokens
// becomes the remaining context.
int resolve_max_tokens(const GenerationOptions& options, int prompt_tokens, int max_model_len);

}  // namespace nibble::api
