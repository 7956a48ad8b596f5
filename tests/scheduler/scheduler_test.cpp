// The scheduler as a step function over a FakeBackend: outputs, stop
// conditions, chunked prefill, prefix caching, preemption, n > 1, refusals.
#include <gtest/gtest.h>

#include <numeric>

#include "nibble/core/error.h"
#include "test_support.h"

namespace nibble::testing {
namespace {

constexpr int kVocab = 32;
const std::vector<int32_t> kEos = {0};

SchedulerConfig small_config() {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 64;
  c.eos_token_ids = kEos;
  return c;
}

std::vector<int32_t> make_prompt(int len, int salt) {
  std::vector<int32_t> p(len);
  for (int i = 0; i < len; ++i) p[i] = 1 + static_cast<int32_t>(splitmix64(salt * 1000003ull + i) % (kVocab - 1));
  return p;
}

GenerationRequest greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0.0;
  r.stop.max_tokens = max_tokens;
  return r;
}

void expect_matches_alone(const Driver& d, uint64_t key, const GenerationRequest& r, uint64_t seed, int max_model_len = 4096) {
  const Collected& c = d.results.at(key);
  for (int i = 0; i < r.n; ++i) {
    Expected e = generate_alone(r, i, seed, kEos, kVocab, max_model_len);
    EXPECT_EQ(c.tokens[i], e.tokens) << "request " << key << " sample " << i;
    ASSERT_TRUE(c.reason[i].has_value()) << "request " << key << " sample " << i;
    EXPECT_EQ(*c.reason[i], e.finish) << "request " << key << " sample " << i;
    EXPECT_EQ(c.finishes[i], 1);
  }
}

TEST(Scheduler, SingleGreedyRequestMatchesReference) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(10, 1), 20);
  r.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  expect_matches_alone(d, 1, r, 0);
  EXPECT_EQ(d.results[1].tokens[0].size(), 20u);
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Length);
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(Scheduler, BatchBuildsPositionsAndBlockTables) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  ASSERT_TRUE(d.add(1, greedy(make_prompt(6, 1), 3)).ok());
  ASSERT_TRUE(d.add(2, greedy(make_prompt(3, 2), 3)).ok());
  SchedulerStep s = d.step();
  const Batch& b = s.batch;
  ASSERT_EQ(b.num_seqs(), 2);
  EXPECT_EQ(b.query_start, (std::vector<int32_t>{0, 6, 9}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 0, 1, 2}));
  EXPECT_EQ(b.seq_lens, (std::vector<int32_t>{6, 3}));
  EXPECT_EQ(b.kv_indptr, (std::vector<int32_t>{0, 2, 3}));
  EXPECT_EQ(b.kv_last_block_len, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(b.logits_indices, (std::vector<int32_t>{5, 8}));
  // Next step: one decode token each, at the next position.
  s = d.step();
  EXPECT_EQ(s.batch.positions, (std::vector<int32_t>{6, 3}));
  EXPECT_EQ(s.batch.seq_lens, (std::vector<int32_t>{7, 4}));
  EXPECT_EQ(s.batch.query_start, (std::vector<int32_t>{0, 1, 2}));
  d.run();
}

TEST(Scheduler, ChunkedPrefillRespectsTokenBudget) {
  FakeBackend backend(kVocab, 64, 4);
  auto config = small_config();
  config.max_num_batched_tokens = 16;
  Driver d(backend, config);
  auto r = greedy(make_prompt(50, 3), 5);
  r.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, r).ok());
  std::vector<int> scheduled;
  while (d.sched.has_unfinished()) scheduled.push_back(d.step().batch.num_tokens());
  EXPECT_EQ(scheduled, (std::vector<int>{16, 16, 16, 2, 1, 1, 1, 1}));
  expect_matches_alone(d, 1, r, 0);
}

TEST(Scheduler, DecodeGoesFirstThenPrefillChunksShareTheBudget) {
  FakeBackend backend(kVocab, 64, 4);
  auto config = small_config();
  config.max_num_batched_tokens = 10;
  Driver d(backend, config);
  auto a = greedy(make_prompt(4, 4), 30);
  a.stop.ignore_eos = true;
  auto b = greedy(make_prompt(25, 5), 4);
  b.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, a).ok());
  EXPECT_EQ(d.step().batch.num_tokens(), 4);
  ASSERT_TRUE(d.add(2, b).ok());
  // a decodes one token, b gets the remaining 9 of the budget, and so on.
  SchedulerStep s = d.step();
  EXPECT_EQ(s.batch.query_start, (std::vector<int32_t>{0, 1, 10}));
  EXPECT_EQ(s.batch.logits_indices, (std::vector<int32_t>{0}));  // b's chunk does not sample
  d.run();
  expect_matches_alone(d, 1, a, 0);
  expect_matches_alone(d, 2, b, 0);
}

TEST(Scheduler, PrefixCacheServesSharedPrefix) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  auto prompt = make_prompt(18, 6);
  auto a = greedy(prompt, 3);
  a.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, a).ok());
  d.run();
  EXPECT_EQ(d.results[1].cached_prompt_tokens, 0);

  // Same first 14 tokens: 3 full blocks (12 tokens) come from the cache.
  auto prompt_b = prompt;
  prompt_b.resize(14);
  prompt_b.push_back(7);
  prompt_b.push_back(9);
  auto b = greedy(prompt_b, 3);
  b.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(2, b).ok());
  SchedulerStep s = d.step();
  EXPECT_EQ(s.batch.num_tokens(), 16 - 12);
  EXPECT_EQ(s.batch.positions.front(), 12);
  d.run();
  EXPECT_EQ(d.results[2].cached_prompt_tokens, 12);
  expect_matches_alone(d, 2, b, 0);
  const EngineStats st = d.sched.stats();
  EXPECT_EQ(st.prefix_cache_queries, 18u + 16u);
  EXPECT_EQ(st.prefix_cache_hits, 12u);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

TEST(Scheduler, PrefixCacheNeverCoversTheWholePrompt) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(16, 7), 2);
  r.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  ASSERT_TRUE(d.add(2, r).ok());
  SchedulerStep s = d.step();
  EXPECT_EQ(s.batch.num_tokens(), 4);  // 12 cached, the last block recomputed for its logits
  EXPECT_EQ(s.batch.logits_indices.size(), 1u);
  d.run();
  EXPECT_EQ(d.results[2].cached_prompt_tokens, 12);
  EXPECT_EQ(d.results[2].tokens, d.results[1].tokens);
}

TEST(Scheduler, PrefixCachingOffComputesEverything) {
  FakeBackend backend(kVocab, 32, 4);
  auto config = small_config();
  config.enable_prefix_caching = false;
  Driver d(backend, config);
  auto r = greedy(make_prompt(16, 7), 2);
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  ASSERT_TRUE(d.add(2, r).ok());
  EXPECT_EQ(d.step().batch.num_tokens(), 16);
  d.run();
  EXPECT_EQ(d.results[2].cached_prompt_tokens, 0);
}

TEST(Scheduler, EvictedCacheBlocksAreNotServed) {
  // A pool so small that the second, different request reuses every block:
  // the first prompt must then miss the cache entirely.
  FakeBackend backend(kVocab, 4, 4);
  Driver d(backend, small_config());
  auto a = greedy(make_prompt(12, 8), 2);
  a.stop.ignore_eos = true;
  auto b = greedy(make_prompt(12, 9), 4);
  b.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, a).ok());
  d.run();
  ASSERT_TRUE(d.add(2, b).ok());
  d.run();
  ASSERT_TRUE(d.add(3, a).ok());
  d.run();
  EXPECT_EQ(d.results[3].cached_prompt_tokens, 0);
  EXPECT_EQ(d.results[3].tokens, d.results[1].tokens);
}

TEST(Scheduler, MinTokensSuppressesEos) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(5, 10), 10);
  r.sampling.logit_bias[0] = 100.0f;  // EOS always wins once allowed
  r.stop.min_tokens = 3;
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  const Collected& c = d.results[1];
  ASSERT_EQ(c.tokens[0].size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_NE(c.tokens[0][i], 0);
  EXPECT_EQ(c.tokens[0][3], 0);
  EXPECT_EQ(*c.reason[0], FinishReason::Stop);
  EXPECT_TRUE(c.by_stop_token[0]);
  expect_matches_alone(d, 1, r, 0);
}

TEST(Scheduler, IgnoreEosRunsToMaxTokens) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(5, 10), 6);
  r.sampling.logit_bias[0] = 100.0f;
  r.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  EXPECT_EQ(d.results[1].tokens[0], std::vector<int32_t>(6, 0));
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Length);
  EXPECT_FALSE(d.results[1].by_stop_token[0]);
}

TEST(Scheduler, StopTokenIdsFinishWithStop) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(5, 11), 10);
  r.sampling.logit_bias[5] = 100.0f;
  r.stop.stop_token_ids = {5};
  r.stop.ignore_eos = true;  // stop_token_ids still apply
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  EXPECT_EQ(d.results[1].tokens[0], (std::vector<int32_t>{5}));
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Stop);
  EXPECT_TRUE(d.results[1].by_stop_token[0]);
}

TEST(Scheduler, MaxTokensFinishesWithLength) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto r = greedy(make_prompt(5, 12), 1);
  r.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, r).ok());
  EXPECT_EQ(d.run(), 1);
  EXPECT_EQ(d.results[1].tokens[0].size(), 1u);
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Length);
}

TEST(Scheduler, RefusesTooLongRequests) {
  FakeBackend backend(kVocab, 100, 4);
  Driver d(backend, small_config(), /*max_model_len=*/64);
  auto r = greedy(make_prompt(50, 13), 20);
  ValidationResult v = d.add(1, r);
  EXPECT_EQ(v.status, SubmitStatus::TooLong);
  EXPECT_NE(v.message.find("64"), std::string::npos) << v.message;
  EXPECT_NE(v.message.find("70"), std::string::npos) << v.message;
  r.stop.max_tokens = 14;
  EXPECT_TRUE(d.add(2, r).ok());
  d.run();
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(Scheduler, RefusesRequestsLargerThanThePool) {
  FakeBackend backend(kVocab, 4, 4);  // 16 tokens of KV in all
  Driver d(backend, small_config());
  ValidationResult v = d.add(1, greedy(make_prompt(10, 14), 7));
  EXPECT_EQ(v.status, SubmitStatus::TooLong);
  EXPECT_NE(v.message.find("KV cache"), std::string::npos) << v.message;
  EXPECT_TRUE(d.add(2, greedy(make_prompt(10, 14), 6)).ok());
}

TEST(Scheduler, RefusesWhenQueueIsFull) {
  FakeBackend backend(kVocab, 16, 4);
  auto config = small_config();
  config.max_waiting = 2;
  Driver d(backend, config);
  EXPECT_TRUE(d.add(1, greedy(make_prompt(4, 1), 2)).ok());
  EXPECT_TRUE(d.add(2, greedy(make_prompt(4, 2), 2)).ok());
  EXPECT_EQ(d.add(3, greedy(make_prompt(4, 3), 2)).status, SubmitStatus::QueueFull);
  d.step();  // both admitted: the queue has room again
  EXPECT_TRUE(d.add(3, greedy(make_prompt(4, 3), 2)).ok());
  d.run();
}

TEST(Scheduler, RejectsInvalidParameters) {
  FakeBackend backend(kVocab, 16, 4);
  Driver d(backend, small_config());
  auto base = greedy(make_prompt(4, 1), 2);
  std::vector<std::pair<std::string, GenerationRequest>> cases;
  auto add_case = [&](const std::string& what, auto mutate) {
    GenerationRequest r = base;
    mutate(r);
    cases.emplace_back(what, r);
  };
  add_case("prompt", [](GenerationRequest& r) { r.prompt.clear(); });
  add_case("vocabulary", [](GenerationRequest& r) { r.prompt[1] = kVocab; });
  add_case("max_tokens", [](GenerationRequest& r) { r.stop.max_tokens = 0; });
  add_case("min_tokens", [](GenerationRequest& r) { r.stop.min_tokens = 3; });
  add_case("temperature", [](GenerationRequest& r) { r.sampling.temperature = -1; });
  add_case("top_p", [](GenerationRequest& r) { r.sampling.top_p = 0; });
  add_case("min_p", [](GenerationRequest& r) { r.sampling.min_p = 1.5; });
  add_case("typical_p", [](GenerationRequest& r) { r.sampling.typical_p = 2; });
  add_case("top_k", [](GenerationRequest& r) { r.sampling.top_k = -2; });
  add_case("repetition_penalty", [](GenerationRequest& r) { r.sampling.repetition_penalty = 0; });
  add_case("top_logprobs", [](GenerationRequest& r) { r.sampling.top_logprobs = 21; });
  add_case("logit_bias", [](GenerationRequest& r) { r.sampling.logit_bias[-1] = 1; });
  add_case("stop_token_ids", [](GenerationRequest& r) { r.stop.stop_token_ids = {kVocab + 3}; });
  add_case("n must", [](GenerationRequest& r) { r.n = 0; });
  uint64_t key = 1;
  for (const auto& [what, r] : cases) {
    ValidationResult v = d.add(key++, r);
    EXPECT_EQ(v.status, SubmitStatus::Invalid) << what;
    EXPECT_NE(v.message.find(what), std::string::npos) << what << ": " << v.message;
  }
  EXPECT_FALSE(d.sched.has_unfinished());
}

TEST(Scheduler, PreemptsNewestWhenBlocksRunOutAndStillMatches) {
  // 10 blocks of 4 tokens; four requests that each grow to 30 tokens.
  FakeBackend backend(kVocab, 10, 4);
  Driver d(backend, small_config());
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    auto r = greedy(make_prompt(6, 20 + i), 24);
    r.stop.ignore_eos = true;
    reqs.push_back(r);
    ASSERT_TRUE(d.add(i + 1, r).ok());
  }
  d.run();
  EXPECT_GT(d.sched.stats().preemptions, 0u);
  for (int i = 0; i < 4; ++i) expect_matches_alone(d, i + 1, reqs[i], 0);
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(Scheduler, OldestRequestKeepsRunningUnderPreemption) {
  FakeBackend backend(kVocab, 10, 4);
  Driver d(backend, small_config());
  for (int i = 0; i < 3; ++i) {
    auto r = greedy(make_prompt(6, 30 + i), 30);
    r.stop.ignore_eos = true;
    ASSERT_TRUE(d.add(i + 1, r).ok());
  }
  // The first request is never preempted: its tokens arrive every step
  // until it finishes (first-come first-served, no starvation).
  size_t last = 0;
  for (int step = 0; step < 30; ++step) {
    d.step();
    size_t now = d.results[1].tokens[0].size();
    EXPECT_EQ(now, last + 1) << "step " << step;
    last = now;
  }
  EXPECT_EQ(d.results[1].finishes[0], 1);
  d.run();
}

TEST(Scheduler, MaxNumSeqsLimitsRunningSet) {
  FakeBackend backend(kVocab, 64, 4);
  auto config = small_config();
  config.max_num_seqs = 2;
  Driver d(backend, config);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(d.add(i + 1, greedy(make_prompt(3, 40 + i), 4)).ok());
  while (d.sched.has_unfinished()) {
    SchedulerStep s = d.step();
    EXPECT_LE(s.batch.num_seqs(), 2);
  }
}

TEST(Scheduler, ParallelSamplesShareThePromptAndMatchSeparateSeeds) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  GenerationRequest r;
  r.prompt = make_prompt(10, 50);
  r.n = 3;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 1234;
  r.stop.max_tokens = 8;
  ASSERT_TRUE(d.add(1, r).ok());
  SchedulerStep first = d.step();
  EXPECT_EQ(first.batch.num_tokens(), 10);  // the prompt is prefilled once
  // After the fork the samples share the two full prompt blocks.
  EXPECT_EQ(d.sched.stats().running, 3);
  EXPECT_EQ(d.sched.block_pool().num_used(), 3);
  SchedulerStep second = d.step();
  // Sample 0 decodes one token; samples 1 and 2 recompute the partial block (2 prompt tokens) + their first token.
  EXPECT_EQ(second.batch.query_start, (std::vector<int32_t>{0, 1, 4, 7}));
  d.run();
  expect_matches_alone(d, 1, r, 1234);
  const Collected& c = d.results[1];
  EXPECT_TRUE(c.tokens[0] != c.tokens[1] || c.tokens[1] != c.tokens[2]);
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(Scheduler, ParallelSamplesWithBlockAlignedPrompt) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  GenerationRequest r;
  r.prompt = make_prompt(8, 51);
  r.n = 4;
  r.sampling.temperature = 0.8;
  r.sampling.top_k = 5;
  r.sampling.seed = 99;
  r.stop.max_tokens = 6;
  ASSERT_TRUE(d.add(1, r).ok());
  d.run();
  expect_matches_alone(d, 1, r, 99);
}

TEST(Scheduler, AbortFreesBlocksAndDeliversOnce) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  GenerationRequest r = greedy(make_prompt(9, 60), 50);
  r.stop.ignore_eos = true;
  r.n = 2;
  ASSERT_TRUE(d.add(1, r).ok());
  ASSERT_TRUE(d.add(2, greedy(make_prompt(9, 61), 50)).ok());
  d.step();
  d.step();
  d.abort(1);
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Abort);
  EXPECT_EQ(*d.results[1].reason[1], FinishReason::Abort);
  d.abort(1);  // a second cancel is a no-op
  EXPECT_EQ(d.results[1].finishes, (std::vector<int>{1, 1}));
  d.run();
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(Scheduler, AbortOfWaitingUnforkedRequestFinishesEverySample) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  GenerationRequest r = greedy(make_prompt(9, 62), 5);
  r.n = 3;
  ASSERT_TRUE(d.add(1, r).ok());
  d.abort(1);
  EXPECT_EQ(d.results[1].finishes, (std::vector<int>{1, 1, 1}));
  EXPECT_FALSE(d.sched.has_unfinished());
}

TEST(Scheduler, FailedStepFailsOnlyItsRequests) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  auto a = greedy(make_prompt(5, 70), 5);
  a.stop.ignore_eos = true;
  ASSERT_TRUE(d.add(1, a).ok());
  SchedulerStep s = d.sched.schedule();
  d.deliver(d.sched.fail_step(s, "device lost"));
  d.sched.check_invariants();
  EXPECT_EQ(*d.results[1].reason[0], FinishReason::Error);
  EXPECT_EQ(d.results[1].errors[0], "device lost");
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
  ASSERT_TRUE(d.add(2, a).ok());
  d.run();
  expect_matches_alone(d, 2, a, 0);
}

TEST(Scheduler, RejectsInconsistentConfig) {
  FakeBackend backend(kVocab, 16, 4);
  auto config = small_config();
  config.max_num_batched_tokens = 4;  // below max_num_seqs
  EXPECT_THROW(Scheduler(config, backend.kv_cache_shape(), kVocab, 64), nibble::Error);
  config = small_config();
  config.max_num_seqs = 0;
  EXPECT_THROW(Scheduler(config, backend.kv_cache_shape(), kVocab, 64), nibble::Error);
  EXPECT_THROW(Scheduler(small_config(), backend.kv_cache_shape(), kVocab, 0), nibble::Error);
}

TEST(Scheduler, GreedyOnlyStepsMarkPlainArgmaxRows) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, small_config());
  auto plain = greedy(make_prompt(5, 90), 4);
  ASSERT_TRUE(d.add(1, plain).ok());
  EXPECT_TRUE(d.step().greedy_only);
  auto biased = plain;
  biased.sampling.logit_bias[3] = 1.0f;
  ASSERT_TRUE(d.add(2, biased).ok());
  EXPECT_FALSE(d.step().greedy_only);
  d.run();
  auto masked = plain;
  masked.stop.min_tokens = 2;  // EOS masking makes rows 0 and 1 non-plain
  masked.stop.max_tokens = 4;
  ASSERT_TRUE(d.add(3, masked).ok());
  std::vector<bool> flags;
  while (d.sched.has_unfinished()) flags.push_back(d.step().greedy_only);
  ASSERT_GE(flags.size(), 3u);  // EOS may end it once allowed
  EXPECT_EQ(std::vector<bool>(flags.begin(), flags.begin() + 3), (std::vector<bool>{false, false, true}));
  auto sampled = plain;
  sampled.sampling.temperature = 0.5;
  ASSERT_TRUE(d.add(4, sampled).ok());
  EXPECT_FALSE(d.step().greedy_only);
  d.run();
}

TEST(Scheduler, BackendPickedTokensMatchHostSampling) {
  FakeBackend backend(kVocab, 32, 4);
  Scheduler s(small_config(), backend.kv_cache_shape(), kVocab, 4096);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    auto r = greedy(make_prompt(3 + 4 * i, 91 + i), 12);
    r.n = 1 + i % 2;
    reqs.push_back(r);
    ASSERT_TRUE(s.add_request(i + 1, r).ok());
  }
  std::map<uint64_t, std::vector<std::vector<int32_t>>> got;
  std::vector<float> logits;
  while (s.has_unfinished()) {
    SchedulerStep step = s.schedule();
    ASSERT_TRUE(step.greedy_only);
    backend.forward(step.batch, logits);
    std::vector<int32_t> tokens;
    for (size_t r = 0; r < step.batch.logits_indices.size(); ++r) {
      auto row = std::span(logits).subspan(r * kVocab, kVocab);
      tokens.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    }
    for (const Delivery& d : s.update_with_tokens(step, tokens)) {
      auto& per = got[d.request_key];
      per.resize(reqs[d.request_key - 1].n);
      per[d.output.index].insert(per[d.output.index].end(), d.output.new_tokens.begin(), d.output.new_tokens.end());
    }
    s.check_invariants();
  }
  for (int i = 0; i < 4; ++i) {
    for (int k = 0; k < reqs[i].n; ++k) {
      EXPECT_EQ(got[i + 1][k], generate_alone(reqs[i], k, 0, kEos, kVocab, 4096).tokens) << i << "/" << k;
    }
  }
  EXPECT_EQ(s.block_pool().num_used(), 0);
}

TEST(Scheduler, LogprobsComeWithTokens) {
  FakeBackend backend(kVocab, 16, 4);
  auto config = small_config();
  Scheduler s(config, backend.kv_cache_shape(), kVocab, 4096);
  auto r = greedy(make_prompt(5, 80), 3);
  r.stop.ignore_eos = true;
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 2;
  ASSERT_TRUE(s.add_request(1, r).ok());
  std::vector<float> logits;
  int tokens = 0;
  while (s.has_unfinished()) {
    SchedulerStep step = s.schedule();
    backend.forward(step.batch, logits);
    for (const Delivery& d : s.update(step, logits)) {
      ASSERT_EQ(d.output.logprobs.size(), d.output.new_tokens.size());
      for (size_t i = 0; i < d.output.new_tokens.size(); ++i) {
        const TokenLogprob& lp = d.output.logprobs[i];
        EXPECT_EQ(lp.token, d.output.new_tokens[i]);
        ASSERT_EQ(lp.top.size(), 2u);
        EXPECT_EQ(lp.top[0].first, lp.token);  // greedy: the top alternative is the token itself
        EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);
        EXPECT_LT(lp.logprob, 0.0f);
        ++tokens;
      }
    }
  }
  EXPECT_EQ(tokens, 3);
}

}  // namespace
}  // namespace nibble::testing
