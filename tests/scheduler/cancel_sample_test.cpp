// Cancelling one sample of an n > 1 request (Scheduler::abort_sample): the
// sample finishes with Abort and frees its own blocks, the shared prompt blocks
// stay with the others, and the other samples generate exactly what they would
// have generated alone, before and after the fork.
#include <gtest/gtest.h>

#include "test_support.h"

namespace nibble::testing {
namespace {

constexpr int kVocab = 32;
const std::vector<int32_t> kEos = {0};

SchedulerConfig config_with_budget(int max_num_batched_tokens) {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = max_num_batched_tokens;
  c.eos_token_ids = kEos;
  return c;
}

GenerationRequest sampled_request(int prompt_len, int salt, int n, int max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(1 + static_cast<int32_t>(splitmix64(salt * 31ull + i) % (kVocab - 1)));
  r.n = n;
  r.sampling.temperature = 1.0;
  r.sampling.seed = 4242 + static_cast<uint64_t>(salt);
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  return r;
}

// Samples not in `cancelled` must match running alone; cancelled ones must be
// a prefix of it and end with Abort.
void expect_outcome(const Driver& d, uint64_t key, const GenerationRequest& r, const std::vector<int>& cancelled) {
  const Collected& c = d.results.at(key);
  for (int i = 0; i < r.n; ++i) {
    SCOPED_TRACE("sample " + std::to_string(i));
    ASSERT_EQ(c.finishes[i], 1);
    Expected e = generate_alone(r, i, *r.sampling.seed, kEos, kVocab, 4096);
    if (std::find(cancelled.begin(), cancelled.end(), i) != cancelled.end()) {
      EXPECT_EQ(*c.reason[i], FinishReason::Abort);
      ASSERT_LE(c.tokens[i].size(), e.tokens.size());
      EXPECT_TRUE(std::equal(c.tokens[i].begin(), c.tokens[i].end(), e.tokens.begin()));
    } else {
      EXPECT_EQ(c.tokens[i], e.tokens);
      EXPECT_EQ(*c.reason[i], e.finish);
    }
  }
}

TEST(SchedulerCancelSample, FreesOnlyItsOwnBlocksAndTheOthersContinue) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, config_with_budget(64));
  GenerationRequest r = sampled_request(10, 1, 3, 12);
  ASSERT_TRUE(d.add(1, r).ok());
  for (int i = 0; i < 4; ++i) d.step();
  // Each sample has 13 tokens computed in 4 blocks: the 2 full prompt blocks
  // are shared by all three, 2 are private to each.
  ASSERT_EQ(d.results[1].tokens[1].size(), 4u);
  EXPECT_EQ(d.sched.block_pool().num_used(), 2 + 3 * 2);

  std::vector<Delivery> out = d.abort_sample(1, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].request_key, 1u);
  EXPECT_EQ(out[0].output.index, 1);
  EXPECT_EQ(out[0].output.finish, FinishReason::Abort);
  EXPECT_EQ(out[0].output.prompt_tokens, 10);
  EXPECT_TRUE(out[0].output.new_tokens.empty());
  EXPECT_EQ(d.sched.block_pool().num_used(), 2 + 2 * 2);
  EXPECT_EQ(d.sched.stats().running, 2);

  // Repeats, finished samples and bad indices are no-ops.
  EXPECT_TRUE(d.abort_sample(1, 1).empty());
  EXPECT_TRUE(d.abort_sample(1, 3).empty());
  EXPECT_TRUE(d.abort_sample(1, -1).empty());
  EXPECT_TRUE(d.abort_sample(99, 0).empty());

  d.run();
  expect_outcome(d, 1, r, {1});
  EXPECT_EQ(d.results[1].tokens[1].size(), 4u);  // nothing after the cancel
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
  EXPECT_FALSE(d.sched.has_unfinished());
}

TEST(SchedulerCancelSample, CancellingEverySampleOneByOneEndsTheRequest) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, config_with_budget(64));
  GenerationRequest r = sampled_request(9, 2, 3, 20);
  ASSERT_TRUE(d.add(1, r).ok());
  GenerationRequest other = sampled_request(7, 3, 1, 6);
  ASSERT_TRUE(d.add(2, other).ok());
  d.step();
  d.step();
  d.abort_sample(1, 2);
  d.abort_sample(1, 0);
  EXPECT_TRUE(d.sched.has_request(1));
  d.step();
  d.abort_sample(1, 1);
  EXPECT_FALSE(d.sched.has_request(1));
  EXPECT_EQ(d.results[1].finishes, (std::vector<int>{1, 1, 1}));
  d.run();
  expect_outcome(d, 2, other, {});
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(SchedulerCancelSample, SampleCancelledDuringPrefillIsNeverForked) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, config_with_budget(8));  // the 20-token prompt takes 3 prefill steps
  GenerationRequest r = sampled_request(20, 4, 3, 6);
  ASSERT_TRUE(d.add(1, r).ok());
  d.step();
  ASSERT_TRUE(d.results[1].tokens[0].empty());
  d.abort_sample(1, 2);
  EXPECT_EQ(d.results[1].finishes, (std::vector<int>{0, 0, 1}));
  while (d.results[1].tokens[0].empty()) d.step();
  EXPECT_EQ(d.sched.stats().running, 2);  // sample 0 and its one fork
  d.run();
  expect_outcome(d, 1, r, {2});
  EXPECT_TRUE(d.results[1].tokens[2].empty());
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(SchedulerCancelSample, CancellingSampleZeroDuringPrefillHandsThePrefillOn) {
  for (bool waiting : {true, false}) {
    SCOPED_TRACE(waiting ? "cancelled while waiting" : "cancelled mid-prefill");
    FakeBackend backend(kVocab, 32, 4);
    Driver d(backend, config_with_budget(8));
    GenerationRequest r = sampled_request(20, 5, 3, 6);
    ASSERT_TRUE(d.add(1, r).ok());
    if (!waiting) d.step();
    d.abort_sample(1, 0);
    EXPECT_EQ(d.results[1].finishes, (std::vector<int>{1, 0, 0}));
    d.run();
    // Samples 1 and 2 keep their own seeds (seed + 1, seed + 2).
    expect_outcome(d, 1, r, {0});
    EXPECT_TRUE(d.results[1].tokens[0].empty());
    EXPECT_EQ(d.sched.stats().prompt_tokens, 20u);  // the prompt was admitted once
    EXPECT_EQ(d.sched.block_pool().num_used(), 0);
  }
}

TEST(SchedulerCancelSample, CancelledUnforkedSamplesFreeRunningSlots) {
  FakeBackend backend(kVocab, 64, 4);
  SchedulerConfig c = config_with_budget(64);
  c.max_num_seqs = 4;
  Driver d(backend, c);
  GenerationRequest big = sampled_request(6, 6, 4, 5);
  GenerationRequest small = sampled_request(5, 7, 1, 5);
  ASSERT_TRUE(d.add(1, big).ok());
  ASSERT_TRUE(d.add(2, small).ok());
  // Request 1 reserves 4 slots until two of its samples are cancelled; then request 2 fits beside it.
  d.abort_sample(1, 3);
  d.abort_sample(1, 1);
  SchedulerStep s = d.step();
  EXPECT_EQ(s.batch.num_seqs(), 2);
  d.run();
  expect_outcome(d, 1, big, {1, 3});
  expect_outcome(d, 2, small, {});
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
}

TEST(SchedulerCancelSample, SingleSampleRequestFinishesLikeAnAbort) {
  FakeBackend backend(kVocab, 32, 4);
  Driver d(backend, config_with_budget(64));
  GenerationRequest r = sampled_request(6, 8, 1, 50);
  ASSERT_TRUE(d.add(1, r).ok());
  d.abort_sample(1, 0);  // still waiting: the unadmitted count must follow
  EXPECT_FALSE(d.sched.has_unfinished());
  EXPECT_EQ(d.sched.num_unadmitted(), 0);
  ASSERT_TRUE(d.add(2, r).ok());
  d.step();
  d.abort_sample(2, 0);
  EXPECT_EQ(*d.results[2].reason[0], FinishReason::Abort);
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
  EXPECT_FALSE(d.sched.has_unfinished());
}

}  // namespace
}  // namespace nibble::testing
