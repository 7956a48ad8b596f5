// POST /tokenize and /detokenize, in vLLM's shapes.
#include <fmt/format.h>

#include "nibble/api/api_error.h"
#include "nibble/api/requests.h"
#include "nibble/core/error.h"
#include "server_state.h"

namespace nibble::server {

using api::ApiError;
using nlohmann::json;

namespace {

bool optional_bool(const json& body, const char* name, bool fallback) {
  if (!body.contains(name) || body[name].is_null()) return fallback;
  if (!body[name].is_boolean()) throw ApiError::invalid_request(fmt::format("'{}' must be a boolean", name), name);
  return body[name].get<bool>();
}

void tokenize(const ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const ServingModel& model = state.ready_model();
  json body = api::parse_json_body(req.body);
  if (!body.is_object()) throw ApiError::invalid_request("The request body must be a JSON object.");
  if (body.contains("model") && body["model"].is_string()) state.check_model_name(body["model"].get<std::string>());
  std::vector<int32_t> ids;
  if (body.contains("messages")) {
    json chat_body = body;
    auto parsed = api::parse_chat_completion_request(chat_body, {model.vocab_size, model.max_model_len});
    if (!model.render_chat) throw ApiError::invalid_request("This model has no chat template.");
    ChatRenderInput input;
    input.messages = ordered_messages(req.body, parsed.messages);
    input.add_generation_prompt = parsed.add_generation_prompt;
    input.special_tokens = model.special_tokens;
    input.extra = parsed.chat_template_kwargs;
    std::string text;
    try {
      text = model.render_chat(input);
    } catch (const nibble::Error& e) {
      throw ApiError::invalid_request(std::string("The chat template failed: ") + e.what(), "messages");
    }
    ids = model.tokenizer->encode(text, optional_bool(body, "add_special_tokens", false));
  } else if (body.contains("prompt") && body["prompt"].is_string()) {
    ids = model.tokenizer->encode(body["prompt"].get<std::string>(), optional_bool(body, "add_special_tokens", true));
  } else {
    throw ApiError::invalid_request("'prompt' (a string) or 'messages' is required", "prompt");
  }
  json out = {{"count", ids.size()}, {"max_model_len", model.max_model_len}, {"tokens", ids}, {"token_strs", nullptr}};
  if (optional_bool(body, "return_token_strs", false)) {
    json strs = json::array();
    for (int32_t id : ids) strs.push_back(model.codec->token_text(id));
    out["token_strs"] = strs;
  }
  send_json(res, 200, out);
}

void detokenize(const ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const ServingModel& model = state.ready_model();
  json body = api::parse_json_body(req.body);
  if (!body.is_object()) throw ApiError::invalid_request("The request body must be a JSON object.");
  if (body.contains("model") && body["model"].is_string()) state.check_model_name(body["model"].get<std::string>());
  if (!body.contains("tokens") || !body["tokens"].is_array())
    throw ApiError::invalid_request("'tokens' (a list of token ids) is required", "tokens");
  std::vector<int32_t> ids;
  for (const auto& t : body["tokens"]) {
    if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() >= model.vocab_size)
      throw ApiError::invalid_request(
          fmt::format("'tokens' holds {}, not a token id in [0, {})", t.dump(), model.vocab_size), "tokens");
    ids.push_back(t.get<int32_t>());
  }
  send_json(res, 200, {{"prompt", model.codec->decode(ids, optional_bool(body, "skip_special_tokens", true))}});
}

}  // namespace

void register_tokenize_routes(httplib::Server& http, ServerState& state) {
  http.Post("/tokenize", guarded([&state](const httplib::Request& req, httplib::Response& res) {
              tokenize(state, req, res);
            }));
  http.Post("/detokenize", guarded([&state](const httplib::Request& req, httplib::Response& res) {
              detokenize(state, req, res);
            }));
}

}  // namespace nibble::server
