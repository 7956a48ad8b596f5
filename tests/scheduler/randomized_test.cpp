// Randomized workloads over a tiny KV pool: arrivals at random steps,
// cancellations at every stage (of whole requests and of single samples), preemption, shared prefixes, n > 1, and a
// mix of sampling options. After every step the scheduler's invariants are
// checked; at the end every request must have finished exactly once per
// sample with what it would have produced alone, and every block is free.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <set>

#include "nibble/core/thread_pool.h"
#include "test_support.h"

namespace nibble::testing {
namespace {

constexpr int kVocab = 24;
const std::vector<int32_t> kEos = {0, 1};

struct Planned {
  uint64_t key;
  int arrive_step;
  int cancel_step;  // -1: never
  GenerationRequest request;
  std::vector<std::pair<int, int>> sample_cancels;  // (step, sample index)
};

GenerationRequest random_request(std::mt19937_64& rng, const std::vector<std::vector<int32_t>>& prefixes,
                                 int max_tokens_cap, int max_n) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  GenerationRequest r;
  if (uni(0, 2) > 0) r.prompt = prefixes[uni(0, static_cast<int>(prefixes.size()) - 1)];
  const int extra = uni(r.prompt.empty() ? 1 : 0, 9);
  for (int i = 0; i < extra; ++i) r.prompt.push_back(uni(2, kVocab - 1));
  r.stop.max_tokens = uni(1, max_tokens_cap);
  r.n = uni(1, max_n);
  if (uni(0, 3) == 0) {
    r.sampling.temperature = 0.0;
  } else {
    r.sampling.temperature = 0.5 + uni(0, 10) / 10.0;
    r.sampling.seed = rng();
    if (uni(0, 2) == 0) r.sampling.top_k = uni(1, 8);
    if (uni(0, 2) == 0) r.sampling.top_p = 0.5 + uni(0, 5) / 10.0;
    if (uni(0, 3) == 0) r.sampling.min_p = 0.05;
    if (uni(0, 5) == 0) r.sampling.typical_p = 0.8;
  }
  if (uni(0, 3) == 0) r.sampling.repetition_penalty = 1.3;
  if (uni(0, 3) == 0) r.sampling.frequency_penalty = 0.5;
  if (uni(0, 3) == 0) r.sampling.presence_penalty = 0.4;
  if (uni(0, 3) == 0) r.stop.min_tokens = uni(0, r.stop.max_tokens);
  if (uni(0, 4) == 0) r.stop.ignore_eos = true;
  if (uni(0, 3) == 0) r.stop.stop_token_ids = {uni(2, kVocab - 1)};
  return r;
}

struct Coverage {
  uint64_t preemptions = 0, cache_hits = 0, aborted = 0, forked = 0, sample_aborted = 0;
};

void run_workload(uint64_t seed, Coverage& coverage) {
  std::mt19937_64 rng(seed);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int block_size = std::vector<int>{2, 4, 8}[uni(0, 2)];
  const int num_blocks = uni(6, 16);
  FakeBackend backend(kVocab, num_blocks, block_size, 4096, {0, 1});
  SchedulerConfig config;
  config.max_num_seqs = uni(2, 6);
  config.max_num_batched_tokens = uni(config.max_num_seqs, 40);
  config.enable_prefix_caching = uni(0, 3) != 0;
  config.eos_token_ids = kEos;
  const int max_model_len = 4096;
  Driver d(backend, config, max_model_len);
  // Every other workload samples on a thread pool: tokens must not change.
  std::unique_ptr<ThreadPool> pool;
  if (seed % 2 == 0) {
    pool = std::make_unique<ThreadPool>(3);
    d.sched.set_sampling_pool(pool.get());
  }

  std::vector<std::vector<int32_t>> prefixes;
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> p(uni(1, 3 * block_size));
    for (auto& t : p) t = uni(2, kVocab - 1);
    prefixes.push_back(p);
  }
  const int capacity = num_blocks * block_size;
  std::vector<Planned> plan;
  for (uint64_t key = 1; key <= 14; ++key) {
    Planned p{key, uni(0, 40), -1, {}};
    do {
      p.request = random_request(rng, prefixes, 14, std::min(3, config.max_num_seqs));
    } while (static_cast<int>(p.request.prompt.size()) + p.request.stop.max_tokens > capacity);
    if (uni(0, 3) == 0) p.cancel_step = p.arrive_step + uni(0, 25);
    plan.push_back(p);
  }
  // Single-sample cancels draw from their own generator, so the rest of the
  // workload stays what it was without them.
  std::mt19937_64 cancel_rng(seed * 0x9E3779B97F4A7C15ull + 17);
  auto cancel_uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(cancel_rng); };
  for (Planned& p : plan) {
    if (p.request.n == 1) continue;
    const int count = cancel_uni(0, 2);
    for (int i = 0; i < count; ++i) {
      p.sample_cancels.emplace_back(p.arrive_step + cancel_uni(0, 20), cancel_uni(0, p.request.n - 1));
    }
  }

  std::map<uint64_t, bool> cancelled;
  std::map<uint64_t, std::set<int>> samples_cancelled;
  for (int step = 0; step < 5000; ++step) {
    for (const Planned& p : plan) {
      if (p.arrive_step == step) {
        ASSERT_TRUE(d.add(p.key, p.request).ok()) << "request " << p.key;
      }
      if (p.cancel_step == step) {
        d.abort(p.key);
        cancelled[p.key] = true;
      }
      for (auto [at, index] : p.sample_cancels) {
        if (at != step) continue;
        d.abort_sample(p.key, index);
        samples_cancelled[p.key].insert(index);
      }
    }
    d.step();
    if (::testing::Test::HasFatalFailure()) return;
    if (step > 70 && !d.sched.has_unfinished()) break;
  }
  ASSERT_FALSE(d.sched.has_unfinished()) << "workload did not finish";

  for (const Planned& p : plan) {
    const Collected& c = d.results.at(p.key);
    for (int i = 0; i < p.request.n; ++i) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " request " + std::to_string(p.key) + " sample " + std::to_string(i));
      ASSERT_EQ(c.finishes[i], 1);
      Expected e = generate_alone(p.request, i, p.request.sampling.seed.value_or(0), kEos, kVocab, max_model_len);
      if (p.request.n > 1) ++coverage.forked;
      if (*c.reason[i] == FinishReason::Abort) {
        ++coverage.aborted;
        const bool sample_cancelled = samples_cancelled[p.key].count(i) != 0;
        if (!cancelled[p.key]) ++coverage.sample_aborted;
        ASSERT_TRUE(cancelled[p.key] || sample_cancelled);
        ASSERT_LE(c.tokens[i].size(), e.tokens.size());
        EXPECT_TRUE(std::equal(c.tokens[i].begin(), c.tokens[i].end(), e.tokens.begin()));
      } else {
        EXPECT_EQ(c.tokens[i], e.tokens);
        EXPECT_EQ(*c.reason[i], e.finish);
      }
    }
  }
  EXPECT_EQ(d.sched.block_pool().num_used(), 0);
  EXPECT_EQ(d.sched.num_running() + d.sched.num_waiting(), 0);
  coverage.preemptions += d.sched.stats().preemptions;
  coverage.cache_hits += d.sched.stats().prefix_cache_hits;
}

TEST(SchedulerRandomized, WorkloadsMatchRunningAlone) {
  Coverage coverage;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    run_workload(seed, coverage);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "first failing workload seed " << seed;
      return;
    }
  }
  // The workloads must actually exercise the hard paths.
  EXPECT_GT(coverage.preemptions, 100u);
  EXPECT_GT(coverage.cache_hits, 100u);
  EXPECT_GT(coverage.aborted, 50u);
  EXPECT_GT(coverage.forked, 50u);
  EXPECT_GT(coverage.sample_aborted, 200u);
  std::printf("coverage: %llu preemptions, %llu cached prompt tokens, %llu aborted samples (%llu alone), "
              "%llu forked samples\n",
              static_cast<unsigned long long>(coverage.preemptions), static_cast<unsigned long long>(coverage.cache_hits),
              static_cast<unsigned long long>(coverage.aborted), static_cast<unsigned long long>(coverage.sample_aborted),
              static_cast<unsigned long long>(coverage.forked));
}

}  // namespace
}  // namespace nibble::testing
