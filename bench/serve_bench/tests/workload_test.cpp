#include <gtest/gtest.h>

#include <set>

#include "workload.h"

using namespace nibble::serve_bench;

namespace {
Options small_options() {
  Options o;
  o.prompt_tokens = {5, 17, 40};
  o.max_tokens = 9;
  o.seed = 42;
  o.model = "m";
  return o;
}
}  // namespace

TEST(Workload, SameSeedSameMixAndEveryLengthUsed) {
  const Options o = small_options();
  const Workload a(o, {}), b(o, {});
  std::set<int> lengths;
  for (int i = 0; i < 64; ++i) {
    const RequestSpec x = a.spec(1, 3, i), y = b.spec(1, 3, i);
    EXPECT_EQ(x.prompt_tokens, y.prompt_tokens);
    EXPECT_EQ(x.prompt_seed, y.prompt_seed);
    EXPECT_EQ(x.max_tokens, 9);
    lengths.insert(x.prompt_tokens);
  }
  EXPECT_EQ(lengths, (std::set<int>{5, 17, 40}));
  Options other = o;
  other.seed = 43;
  EXPECT_NE(Workload(other, {}).spec(1, 3, 0).prompt_seed, a.spec(1, 3, 0).prompt_seed);
}

TEST(Workload, TokenPromptsHaveTheExactLengthAndDifferPerRequest) {
  const Options o = small_options();
  PromptSource source;
  source.token_pool = {11, 12, 13, 14, 15, 16, 17, 18};
  const Workload w(o, source);
  std::set<std::string> prompts;
  for (int client = 0; client < 4; ++client) {
    const RequestSpec spec = w.spec(0, client, 0);
    const nlohmann::json body = w.body(spec);
    ASSERT_TRUE(body["prompt"].is_array());
    EXPECT_EQ(body["prompt"].size(), static_cast<std::size_t>(spec.prompt_tokens));
    for (const auto& id : body["prompt"]) EXPECT_TRUE(id >= 11 && id <= 18);
    EXPECT_EQ(body["max_tokens"], 9);
    EXPECT_EQ(body["stream"], true);
    EXPECT_EQ(body["ignore_eos"], true);
    EXPECT_EQ(body["stream_options"]["include_usage"], true);
    EXPECT_EQ(body["model"], "m");
    prompts.insert(body["prompt"].dump());
  }
  EXPECT_EQ(prompts.size(), 4u);
}

TEST(Workload, ChatBodiesCarryScaledWordPrompts) {
  Options o = small_options();
  o.endpoint = Endpoint::chat;
  PromptSource source;
  source.tokens_per_word = 2.0;
  const Workload w(o, source);
  RequestSpec spec{40, 9, 7};
  const nlohmann::json body = w.body(spec);
  ASSERT_TRUE(body["messages"].is_array());
  EXPECT_EQ(body["messages"][0]["role"], "user");
  const std::string text = body["messages"][0]["content"];
  EXPECT_EQ(std::count(text.begin(), text.end(), ' '), 19);  // 20 words for 40 tokens
  EXPECT_FALSE(body.contains("prompt"));
}
