#include <gtest/gtest.h>

#include "fake_codec.h"
#include "nibble/api/responses.h"

using namespace nibble;
using nlohmann::json;

namespace {
const api::ResponseHeader kHeader{"chatcmpl-1", 1700000000, "demo", "fp_nibble"};
}

TEST(Responses, IdsAreUniqueAndPrefixed) {
  auto a = api::make_response_id("chatcmpl-");
  auto b = api::make_response_id("chatcmpl-");
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);
}

TEST(Responses, ChatCompletionShape) {
  api::ChatChoice c{0, "hi", "stop", std::nullopt};
  json j = api::chat_completion_json(kHeader, {c}, {5, 2, 3});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "demo");
  EXPECT_EQ(j["system_fingerprint"], "fp_nibble");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hi");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  EXPECT_EQ(j["usage"]["total_tokens"], 7);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
}

TEST(Responses, ChatChunksAndUsageChunk) {
  json first = api::chat_chunk_json(kHeader, 1, {{"role", "assistant"}, {"content", ""}}, nullptr, std::nullopt, true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["index"], 1);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first.contains("usage") && first["usage"].is_null());
  json plain = api::chat_chunk_json(kHeader, 0, {{"content", "x"}}, nullptr, "length", false);
  EXPECT_FALSE(plain.contains("usage"));
  EXPECT_EQ(plain["choices"][0]["finish_reason"], "length");
  json usage = api::chat_usage_chunk_json(kHeader, {3, 4, 0});
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
}

TEST(Responses, ChatLogprobsShape) {
  fakes::ByteCodec codec;
  std::vector<TokenLogprob> lps = {{'h', -0.25f, {{'h', -0.25f}, {'j', -2.0f}}}, {0xC3, -1.0f, {}}};
  json c = api::chat_logprobs_content(lps, codec);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0]["token"], "h");
  EXPECT_FLOAT_EQ(c[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(c[0]["bytes"], json::array({104}));
  ASSERT_EQ(c[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(c[0]["top_logprobs"][1]["token"], "j");
  EXPECT_EQ(c[1]["token"], "\xEF\xBF\xBD");  // a lone byte prints as U+FFFD, bytes keep it raw
  EXPECT_EQ(c[1]["bytes"], json::array({0xC3}));
}

TEST(Responses, CompletionLogprobsShapeWithEcho) {
  fakes::ByteCodec codec;
  api::CompletionLogprobs lp;
  lp.append_prompt({'a', 'b'}, codec);
  lp.append({{'c', -0.5f, {{'c', -0.5f}, {'d', -1.0f}}}}, {0}, 2, codec, 2);
  json j = lp.to_json();
  EXPECT_EQ(j["tokens"], json({"a", "b", "c"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["token_logprobs"][2].get<float>(), -0.5f);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_FLOAT_EQ(j["top_logprobs"][2]["d"].get<float>(), -1.0f);
  EXPECT_EQ(j["text_offset"], json({0, 1, 2}));
}

TEST(Responses, TextCompletionShape) {
  json j = api::text_completion_json(kHeader, {{0, "abc", "length", std::nullopt}}, {1, 3, 0});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  json chunk = api::completion_chunk_json(kHeader, 2, "x", nullptr, std::nullopt, true);
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["choices"][0]["index"], 2);
  EXPECT_TRUE(chunk["usage"].is_null());
}
