#include <gtest/gtest.h>

#include "nibble/api/api_error.h"
#include "nibble/api/requests.h"

using nibble::api::ApiError;
using nlohmann::json;
namespace api = nibble::api;

namespace {

const api::ModelLimits kLimits{258, 512};

json chat(json extra = json::object()) {
  json body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  body.update(extra);
  return body;
}

// Expects a 400 naming param.
void expect_invalid(const json& body, const std::string& param, bool completions = false) {
  try {
    if (completions)
      api::parse_completion_request(body, kLimits);
    else
      api::parse_chat_completion_request(body, kLimits);
    FAIL() << "accepted " << body.dump();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400) << body.dump();
    EXPECT_EQ(e.type(), "invalid_request_error");
    ASSERT_TRUE(e.param().has_value()) << e.what();
    EXPECT_EQ(*e.param(), param) << e.what();
  }
}

}  // namespace

TEST(ChatRequest, ParsesEveryParameter) {
  json body = chat({{"max_completion_tokens", 7}, {"max_tokens", 99}, {"temperature", 0.5}, {"top_p", 0.9},
                    {"n", 3}, {"stop", "END"}, {"seed", 42}, {"presence_penalty", 0.1},
                    {"frequency_penalty", -0.2}, {"logit_bias", {{"65", 5}, {"66", -100}}}, {"logprobs", true},
                    {"top_logprobs", 4}, {"user", "u1"}, {"stream", true},
                    {"stream_options", {{"include_usage", true}}}, {"top_k", 40}, {"min_p", 0.05},
                    {"typical_p", 0.95}, {"repetition_penalty", 1.1}, {"min_tokens", 2}, {"ignore_eos", true},
                    {"stop_token_ids", {10, 13}}, {"include_stop_str_in_output", true}, {"unknown_field", 1}});
  auto r = api::parse_chat_completion_request(body, kLimits);
  EXPECT_EQ(r.options.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_DOUBLE_EQ(r.options.sampling.temperature, 0.5);
  EXPECT_DOUBLE_EQ(r.options.sampling.top_p, 0.9);
  EXPECT_EQ(r.options.n, 3);
  EXPECT_EQ(r.options.stop_strings, std::vector<std::string>{"END"});
  EXPECT_EQ(r.options.sampling.seed, 42u);
  EXPECT_DOUBLE_EQ(r.options.sampling.presence_penalty, 0.1);
  EXPECT_DOUBLE_EQ(r.options.sampling.frequency_penalty, -0.2);
  EXPECT_FLOAT_EQ(r.options.sampling.logit_bias.at(65), 5.0f);
  EXPECT_FLOAT_EQ(r.options.sampling.logit_bias.at(66), -100.0f);
  EXPECT_TRUE(r.logprobs);
  EXPECT_TRUE(r.options.sampling.logprobs);
  EXPECT_EQ(r.options.sampling.top_logprobs, 4);
  EXPECT_EQ(r.options.user, "u1");
  EXPECT_TRUE(r.options.stream);
  EXPECT_TRUE(r.options.include_usage);
  EXPECT_EQ(r.options.sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(r.options.sampling.min_p, 0.05);
  EXPECT_DOUBLE_EQ(r.options.sampling.typical_p, 0.95);
  EXPECT_DOUBLE_EQ(r.options.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(r.options.stop.min_tokens, 2);
  EXPECT_TRUE(r.options.stop.ignore_eos);
  EXPECT_EQ(r.options.stop.stop_token_ids, (std::vector<int32_t>{10, 13}));
  EXPECT_TRUE(r.options.include_stop_str_in_output);
}

TEST(ChatRequest, NormalisesContentParts) {
  json body = chat({{"messages",
                     {{{"role", "developer"}, {"content", "be brief"}},
                      {{"role", "user"},
                       {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}}}}});
  auto r = api::parse_chat_completion_request(body, kLimits);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_FALSE(r.options.max_tokens.has_value());
}

TEST(ChatRequest, RejectsBadInputNamingTheField) {
  expect_invalid(json{{"model", "m"}}, "messages");
  expect_invalid(chat({{"messages", json::array()}}), "messages");
  expect_invalid(chat({{"messages", "hi"}}), "messages");
  expect_invalid(chat({{"messages", {{{"content", "x"}}}}}), "messages[0].role");
  expect_invalid(chat({{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), "messages[0].role");
  expect_invalid(chat({{"messages", {{{"role", "user"}, {"content", 5}}}}}), "messages[0].content");
  expect_invalid(chat({{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}}}}),
                 "messages[0].content");
  expect_invalid(chat({{"temperature", "hot"}}), "temperature");
  expect_invalid(chat({{"temperature", 2.5}}), "temperature");
  expect_invalid(chat({{"top_p", 0}}), "top_p");
  expect_invalid(chat({{"n", 0}}), "n");
  expect_invalid(chat({{"n", 1.5}}), "n");
  expect_invalid(chat({{"max_tokens", 0}}), "max_tokens");
  expect_invalid(chat({{"max_tokens", -3}}), "max_tokens");
  expect_invalid(chat({{"max_tokens", "10"}}), "max_tokens");
  expect_invalid(chat({{"stop", 3}}), "stop");
  expect_invalid(chat({{"stop", {""}}}), "stop");
  expect_invalid(chat({{"seed", 1.5}}), "seed");
  expect_invalid(chat({{"presence_penalty", 3}}), "presence_penalty");
  expect_invalid(chat({{"logit_bias", {{"abc", 1}}}}), "logit_bias");
  expect_invalid(chat({{"logit_bias", {{"9999", 1}}}}), "logit_bias");
  expect_invalid(chat({{"logit_bias", {{"1", 101}}}}), "logit_bias");
  expect_invalid(chat({{"top_logprobs", 3}}), "top_logprobs");
  expect_invalid(chat({{"logprobs", true}, {"top_logprobs", 21}}), "top_logprobs");
  expect_invalid(chat({{"logprobs", 1}}), "logprobs");
  expect_invalid(chat({{"stream_options", {{"include_usage", true}}}}), "stream_options");
  expect_invalid(chat({{"stop_token_ids", {300}}}), "stop_token_ids");
  expect_invalid(chat({{"tools", {{{"type", "function"}}}}}), "tools");
  expect_invalid(chat({{"tool_choice", "required"}}), "tool_choice");
  expect_invalid(chat({{"response_format", {{"type", "json_object"}}}}), "response_format");
  expect_invalid(chat({{"max_tokens", 5}, {"min_tokens", 6}}), "min_tokens");
}

TEST(ChatRequest, AcceptsNullsAndSupportedDefaults) {
  auto r = api::parse_chat_completion_request(
      chat({{"temperature", nullptr}, {"stop", nullptr}, {"tool_choice", "none"}, {"tools", json::array()},
            {"response_format", {{"type", "text"}}}, {"max_tokens", 12.0}}),
      kLimits);
  EXPECT_DOUBLE_EQ(r.options.sampling.temperature, 1.0);
  EXPECT_EQ(r.options.max_tokens, 12);
}

TEST(ChatRequest, BodyMustBeAnObject) {
  EXPECT_THROW(api::parse_chat_completion_request(json::array(), kLimits), ApiError);
}

TEST(CompletionRequest, ParsesEveryPromptForm) {
  auto one = api::parse_completion_request({{"prompt", "hello"}}, kLimits);
  ASSERT_EQ(one.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::string>(one.prompts[0]), "hello");
  auto strings = api::parse_completion_request({{"prompt", {"a", "b"}}}, kLimits);
  EXPECT_EQ(strings.prompts.size(), 2u);
  auto ids = api::parse_completion_request({{"prompt", {1, 2, 3}}}, kLimits);
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(ids.prompts[0]), (std::vector<int32_t>{1, 2, 3}));
  auto lists = api::parse_completion_request({{"prompt", {{1, 2}, {3}}}, {"echo", true}, {"logprobs", 2}}, kLimits);
  ASSERT_EQ(lists.prompts.size(), 2u);
  EXPECT_TRUE(lists.echo);
  EXPECT_EQ(lists.logprobs, 2);
  EXPECT_TRUE(lists.options.sampling.logprobs);
  EXPECT_EQ(lists.options.sampling.top_logprobs, 2);
}

TEST(CompletionRequest, RejectsBadPrompts) {
  expect_invalid({{"model", "m"}}, "prompt", true);
  expect_invalid({{"prompt", 5}}, "prompt", true);
  expect_invalid({{"prompt", json::array()}}, "prompt", true);
  expect_invalid({{"prompt", {"a", 1}}}, "prompt", true);
  expect_invalid({{"prompt", {1, -1}}}, "prompt", true);
  expect_invalid({{"prompt", {1, 258}}}, "prompt", true);
  expect_invalid({{"prompt", {{1}, json::array()}}}, "prompt", true);
  expect_invalid({{"prompt", "x"}, {"logprobs", 21}}, "logprobs", true);
  expect_invalid({{"prompt", "x"}, {"suffix", "y"}}, "suffix", true);
  expect_invalid({{"prompt", "x"}, {"best_of", 3}}, "best_of", true);
}

TEST(JsonBody, MalformedJsonAndInvalidUtf8Are400) {
  EXPECT_THROW(api::parse_json_body("{\"a\":"), ApiError);
  EXPECT_THROW(api::parse_json_body("{\"a\":\"\xff\xfe\"}"), ApiError);
  EXPECT_THROW(api::parse_json_body("{\"a\":\"\\ud800\"}"), ApiError);
  EXPECT_EQ(api::parse_json_body("{\"a\":\"\xc3\xa9\"}")["a"], "\xc3\xa9");
}

TEST(MaxTokens, ResolvedAgainstTheContext) {
  api::GenerationOptions o;
  EXPECT_EQ(api::resolve_max_tokens(o, 100, 512), 412);
  o.max_tokens = 412;
  EXPECT_EQ(api::resolve_max_tokens(o, 100, 512), 412);
  o.max_tokens = 413;
  try {
    api::resolve_max_tokens(o, 100, 512);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_EQ(e.code(), "context_length_exceeded");
  }
  o.max_tokens = 9'000'000'000'000LL;
  EXPECT_THROW(api::resolve_max_tokens(o, 100, 512), ApiError);
  o.max_tokens.reset();
  EXPECT_THROW(api::resolve_max_tokens(o, 512, 512), ApiError);
}

TEST(ApiErrorJson, HasTheOpenAIShape) {
  json j = ApiError::model_not_found("x").to_json();
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_EQ(j["error"]["param"], "model");
  EXPECT_TRUE(j["error"]["message"].is_string());
  json k = ApiError::invalid_request("bad").to_json();
  EXPECT_TRUE(k["error"]["code"].is_null());
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_EQ(ApiError::unauthorized().status(), 401);
  EXPECT_EQ(ApiError::rate_limited("full").status(), 429);
}
