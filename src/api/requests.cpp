#include "nibble/api/requests.h"

#include <fmt/format.h>

#include "json_fields.h"
#include "nibble/api/api_error.h"

namespace nibble::api {
namespace {

using nlohmann::json;
using namespace fields;

constexpr long long kMaxTokensLimit = 9'000'000'000'000'000LL;
constexpr int kMaxN = 128;
constexpr int kMaxTopLogprobs = 20;
constexpr size_t kMaxStopStrings = 32;

void require_object(const json& body) {
  if (!body.is_object()) throw ApiError::invalid_request("The request body must be a JSON object.");
}

int32_t token_id(const json& v, const std::string& param, int vocab_size) {
  auto i = as_integer(v);
  if (!i) fail(param, fmt::format("'{}' must hold integer token ids, got {}", param, v.dump()));
  if (*i < 0 || *i >= vocab_size)
    fail(param, fmt::format("'{}' holds token id {} outside the vocabulary [0, {})", param, *i, vocab_size));
  return static_cast<int32_t>(*i);
}

std::vector<std::string> parse_stop(const json& body) {
  if (!present(body, "stop")) return {};
  const auto& v = body.at("stop");
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > kMaxStopStrings) fail("stop", fmt::format("'stop' may hold at most {} strings", kMaxStopStrings));
    for (const auto& s : v) {
      if (!s.is_string()) fail("stop", "'stop' must be a string or a list of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    fail("stop", fmt::format("'stop' must be a string or a list of strings, got {}", v.type_name()));
  }
  for (const auto& s : out)
    if (s.empty()) fail("stop", "'stop' strings must not be empty");
  return out;
}

void parse_sampling(const json& body, const ModelLimits& limits, GenerationOptions& o) {
  auto& s = o.sampling;
  if (auto v = get_number(body, "temperature", 0.0, 2.0)) s.temperature = *v;
  if (auto v = get_number(body, "top_p", 0.0, 1.0, true)) s.top_p = *v;
  if (auto v = get_int(body, "top_k", -1, 1'000'000'000)) s.top_k = static_cast<int>(*v);
  if (auto v = get_number(body, "min_p", 0.0, 1.0)) s.min_p = *v;
  if (auto v = get_number(body, "typical_p", 0.0, 1.0, true)) s.typical_p = *v;
  if (auto v = get_number(body, "repetition_penalty", 0.0, 100.0, true)) s.repetition_penalty = *v;
  if (auto v = get_number(body, "presence_penalty", -2.0, 2.0)) s.presence_penalty = *v;
  if (auto v = get_number(body, "frequency_penalty", -2.0, 2.0)) s.frequency_penalty = *v;
  if (present(body, "seed")) {
    const auto& v = body.at("seed");
    if (!v.is_number_integer()) fail("seed", fmt::format("'seed' must be an integer, got {}", v.dump()));
    s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
  }
  if (present(body, "logit_bias")) {
    const auto& lb = body.at("logit_bias");
    if (!lb.is_object()) fail("logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
    for (const auto& [key, value] : lb.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id >= limits.vocab_size)
        fail("logit_bias", fmt::format("'logit_bias' key '{}' is not a token id in [0, {})", key, limits.vocab_size));
      if (!value.is_number() || value.get<double>() < -100.0 || value.get<double>() > 100.0)
        fail("logit_bias", fmt::format("'logit_bias' value for token {} must be a number in [-100, 100]", key));
      s.logit_bias[static_cast<int32_t>(id)] = value.get<float>();
    }
  }
}

GenerationOptions parse_common(const json& body, const ModelLimits& limits, const char* max_tokens_field) {
  GenerationOptions o;
  if (auto m = get_string(body, "model")) o.model = *m;
  if (auto v = get_int(body, max_tokens_field, 1, kMaxTokensLimit)) o.max_tokens = *v;
  if (auto v = get_int(body, "n", 1, kMaxN)) o.n = static_cast<int>(*v);
  if (present(body, "best_of")) {
    auto b = get_int(body, "best_of", 1, kMaxN);
    if (*b != o.n) fail("best_of", "'best_of' different from 'n' is not supported");
  }
  parse_sampling(body, limits, o);
  o.stop_strings = parse_stop(body);
  if (auto v = get_int(body, "min_tokens", 0, kMaxTokensLimit)) {
    if (o.max_tokens && *v > *o.max_tokens) fail("min_tokens", "'min_tokens' must not exceed 'max_tokens'");
    o.stop.min_tokens = static_cast<int>(std::min<long long>(*v, 1 << 30));
  }
  if (auto v = get_bool(body, "ignore_eos")) o.stop.ignore_eos = *v;
  if (present(body, "stop_token_ids")) {
    const auto& ids = body.at("stop_token_ids");
    if (!ids.is_array()) fail("stop_token_ids", "'stop_token_ids' must be a list of token ids");
    for (const auto& id : ids) o.stop.stop_token_ids.push_back(token_id(id, "stop_token_ids", limits.vocab_size));
  }
  if (auto v = get_bool(body, "include_stop_str_in_output")) o.include_stop_str_in_output = *v;
  if (auto v = get_bool(body, "skip_special_tokens")) o.skip_special_tokens = *v;
  if (auto v = get_bool(body, "stream")) o.stream = *v;
  if (present(body, "stream_options")) {
    const auto& so = body.at("stream_options");
    if (!so.is_object()) fail("stream_options", "'stream_options' must be an object");
    if (!o.stream) fail("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (auto v = get_bool(so, "include_usage")) o.include_usage = *v;
  }
  if (auto v = get_string(body, "user")) o.user = *v;
  return o;
}

std::string content_to_text(const json& content, size_t index) {
  std::string param = fmt::format("messages[{}].content", index);
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  if (!content.is_array()) fail(param, fmt::format("'{}' must be a string or a list of content parts", param));
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      fail(param, fmt::format("'{}' parts must be objects with a 'type'", param));
    std::string type = part["type"].get<std::string>();
    if (type != "text")
      fail(param, fmt::format("content part type '{}' in '{}' is not supported (text only)", type, param));
    if (!part.contains("text") || !part["text"].is_string())
      fail(param, fmt::format("text parts of '{}' need a string 'text'", param));
    if (!text.empty()) text += "\n";
    text += part["text"].get<std::string>();
  }
  return text;
}

json parse_messages(const json& body) {
  if (!body.contains("messages")) fail("messages", "'messages' is required");
  const auto& messages = body.at("messages");
  if (!messages.is_array()) fail("messages", fmt::format("'messages' must be a list, got {}", messages.type_name()));
  if (messages.empty()) fail("messages", "'messages' must not be empty");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) fail(param, fmt::format("'{}' must be an object", param));
    if (!m.contains("role") || !m["role"].is_string()) fail(param + ".role", fmt::format("'{}.role' is required", param));
    std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool")
      fail(param + ".role", fmt::format("'{}.role' must be system, developer, user, assistant or tool, got '{}'",
                                        param, role));
    bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (!m.contains("content") && !(role == "assistant" && has_tool_calls))
      fail(param + ".content", fmt::format("'{}.content' is required", param));
    json msg = m;
    msg["role"] = role == "developer" ? "system" : role;
    msg["content"] = content_to_text(m.value("content", json()), i);
    if (m.contains("name") && !m["name"].is_string()) fail(param + ".name", "'name' must be a string");
    out.push_back(std::move(msg));
  }
  return out;
}

void reject_unsupported_chat_fields(const json& body) {
  bool has_tools = present(body, "tools") && !(body["tools"].is_array() && body["tools"].empty());
  std::string tool_choice = "auto";
  if (present(body, "tool_choice"))
    tool_choice = body["tool_choice"].is_string() ? body["tool_choice"].get<std::string>() : "function";
  if (has_tools && tool_choice != "none")
    fail("tools", "tool calling is not supported yet; omit 'tools' or set 'tool_choice' to \"none\"");
  if (!has_tools && tool_choice != "none" && tool_choice != "auto")
    fail("tool_choice", "'tool_choice' other than \"none\" is not supported yet");
  if (present(body, "functions") || present(body, "function_call"))
    fail("functions", "function calling is not supported yet");
  if (present(body, "response_format")) {
    const auto& rf = body["response_format"];
    if (!rf.is_object() || rf.value("type", "") != "text")
      fail("response_format", "'response_format' other than {\"type\":\"text\"} is not supported yet");
  }
  if (present(body, "modalities")) {
    const auto& m = body["modalities"];
    if (m != json::array({"text"})) fail("modalities", "only the \"text\" modality is supported");
  }
  if (present(body, "audio")) fail("audio", "audio output is not supported");
}

PromptInput parse_token_list(const json& list, const std::string& param, int vocab_size) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (const auto& id : list) ids.push_back(token_id(id, param, vocab_size));
  if (ids.empty()) fail(param, fmt::format("'{}' must not be an empty token list", param));
  return ids;
}

std::vector<PromptInput> parse_prompts(const json& body, int vocab_size) {
  if (!present(body, "prompt")) fail("prompt", "'prompt' is required");
  const auto& p = body.at("prompt");
  std::vector<PromptInput> prompts;
  if (p.is_string()) {
    prompts.emplace_back(p.get<std::string>());
  } else if (p.is_array()) {
    if (p.empty()) fail("prompt", "'prompt' must not be empty");
    if (p[0].is_string()) {
      for (const auto& s : p) {
        if (!s.is_string()) fail("prompt", "'prompt' lists must hold only strings or only token ids");
        prompts.emplace_back(s.get<std::string>());
      }
    } else if (p[0].is_array()) {
      for (const auto& ids : p) {
        if (!ids.is_array()) fail("prompt", "'prompt' lists of token lists must hold only lists");
        prompts.push_back(parse_token_list(ids, "prompt", vocab_size));
      }
    } else if (p[0].is_number()) {
      prompts.push_back(parse_token_list(p, "prompt", vocab_size));
    } else {
      fail("prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of token-id lists");
    }
  } else {
    fail("prompt", fmt::format("'prompt' must be a string or a list, got {}", p.type_name()));
  }
  if (prompts.size() > 256) fail("prompt", "'prompt' may hold at most 256 prompts");
  return prompts;
}

}  // namespace

nlohmann::json parse_json_body(const std::string& body) {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError::invalid_request(fmt::format("The request body is not valid JSON: {}", e.what()));
  }
}

ChatCompletionRequest parse_chat_completion_request(const nlohmann::json& body, const ModelLimits& limits) {
  require_object(body);
  reject_unsupported_chat_fields(body);
  ChatCompletionRequest r;
  r.messages = parse_messages(body);
  const char* max_field = present(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.options = parse_common(body, limits, max_field);
  if (auto v = get_bool(body, "logprobs")) r.logprobs = *v;
  if (auto v = get_int(body, "top_logprobs", 0, kMaxTopLogprobs)) {
    if (!r.logprobs && *v > 0) fail("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
    r.top_logprobs = static_cast<int>(*v);
  }
  r.options.sampling.logprobs = r.logprobs;
  r.options.sampling.top_logprobs = r.top_logprobs;
  if (auto v = get_bool(body, "add_generation_prompt")) r.add_generation_prompt = *v;
  if (auto v = get_bool(body, "continue_final_message")) r.continue_final_message = *v;
  if (present(body, "chat_template_kwargs")) {
    if (!body["chat_template_kwargs"].is_object()) fail("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    r.chat_template_kwargs = body["chat_template_kwargs"];
  }
  return r;
}

CompletionRequest parse_completion_request(const nlohmann::json& body, const ModelLimits& limits) {
  require_object(body);
  if (present(body, "suffix")) fail("suffix", "'suffix' is not supported");
  CompletionRequest r;
  r.prompts = parse_prompts(body, limits.vocab_size);
  r.options = parse_common(body, limits, "max_tokens");
  if (auto v = get_bool(body, "echo")) r.echo = *v;
  if (present(body, "logprobs")) {
    auto v = get_int(body, "logprobs", 0, kMaxTopLogprobs);
    r.logprobs = static_cast<int>(*v);
    r.options.sampling.logprobs = true;
    r.options.sampling.top_logprobs = r.logprobs.value();
  }
  return r;
}

int resolve_max_tokens(const GenerationOptions& options, int prompt_tokens, int max_model_len) {
  long long room = static_cast<long long>(max_model_len) - prompt_tokens;
  if (room <= 0 || (options.max_tokens && *options.max_tokens > room)) {
    throw ApiError::context_length_exceeded(fmt::format(
        "This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the prompt, {} "
        "for the completion). Please reduce the prompt or the completion length.",
        max_model_len, prompt_tokens + options.max_tokens.value_or(room > 0 ? room : 1), prompt_tokens,
        options.max_tokens.value_or(room > 0 ? room : 1)));
  }
  return static_cast<int>(options.max_tokens.value_or(room));
}

}  // namespace nibble::api
