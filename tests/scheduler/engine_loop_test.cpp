// The engine loop on its thread: concurrent submitters, cancellation,
// shutdown with drain, backend failures, refusals, stats, idling.
#include <gtest/gtest.h>

#include <ctime>
#include <random>
#include <functional>
#include <thread>

#include "nibble/core/error.h"
#include "test_support.h"

namespace nibble::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kVocab = 32;
const std::vector<int32_t> kEos = {0};

struct Result {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::optional<FinishReason>> reason;
  std::vector<std::string> error;
  int deliveries = 0;
};

Result collect(RequestHandle& h, int n, std::chrono::milliseconds limit = 10s) {
  Result r;
  r.tokens.resize(n);
  r.reason.resize(n);
  r.error.resize(n);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto out = h.next(50ms);
    if (!out) {
      if (h.finished()) break;
      continue;
    }
    ++r.deliveries;
    EXPECT_FALSE(r.reason[out->index].has_value()) << "delivery after finish";
    r.tokens[out->index].insert(r.tokens[out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
    if (out->finish) {
      r.reason[out->index] = out->finish;
      r.error[out->index] = out->error;
    }
  }
  return r;
}

GenerationRequest make_request(int salt, int prompt_len, int max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(1 + static_cast<int32_t>(splitmix64(salt * 7777ull + i) % (kVocab - 1)));
  r.stop.max_tokens = max_tokens;
  r.sampling.temperature = 0.9;
  r.sampling.seed = static_cast<uint64_t>(salt);
  return r;
}

SchedulerConfig loop_config() {
  SchedulerConfig c;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 32;
  c.eos_token_ids = kEos;
  return c;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return cond();
}

TEST(EngineLoop, ConcurrentSubmittersGetTheirOwnOutputs) {
  FakeBackend backend(kVocab, 24, 4);  // small enough to preempt
  auto loop = EngineLoop::start(backend, loop_config());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        GenerationRequest r = make_request(t * 100 + i, 3 + (i * 5) % 17, 4 + (i * 3) % 20);
        r.n = 1 + i % 3;
        SubmitResult s = loop->submit(r);
        ASSERT_EQ(s.status, SubmitStatus::Ok) << s.message;
        Result got = collect(*s.handle, r.n);
        for (int k = 0; k < r.n; ++k) {
          Expected e = generate_alone(r, k, *r.sampling.seed, kEos, kVocab, 4096);
          EXPECT_EQ(got.tokens[k], e.tokens) << "thread " << t << " request " << i << " sample " << k;
          ASSERT_TRUE(got.reason[k].has_value());
          EXPECT_EQ(*got.reason[k], e.finish);
        }
        EXPECT_TRUE(s.handle->finished());
        EXPECT_FALSE(s.handle->next(0ms).has_value());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(wait_until([&] { return loop->stats().kv_blocks_used == 0; }));
  EngineStats st = loop->stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.kv_blocks_total, 24);
  EXPECT_GT(st.prompt_tokens, 0u);
  EXPECT_GT(st.generation_tokens, 0u);
  loop->shutdown(1s);
}

TEST(EngineLoop, RandomCancelsFromManyThreadsLeaveNothingBehind) {
  FakeBackend backend(kVocab, 20, 4);
  auto loop = EngineLoop::start(backend, loop_config());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 15; ++i) {
        GenerationRequest r = make_request(1000 + t * 100 + i, 2 + static_cast<int>(rng() % 20), 1 + static_cast<int>(rng() % 25));
        r.n = 1 + static_cast<int>(rng() % 2);
        const int cancel_after = static_cast<int>(rng() % 8) - 2;  // < 0: never; 0: right after submit
        SubmitResult s = loop->submit(r);
        ASSERT_EQ(s.status, SubmitStatus::Ok) << s.message;
        if (cancel_after == 0) s.handle->cancel();
        std::vector<std::vector<int32_t>> tokens(r.n);
        std::vector<int> finishes(r.n, 0);
        std::vector<FinishReason> reasons(r.n);
        int deliveries = 0;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        for (;;) {
          auto out = s.handle->next(20ms);
          if (!out) {
            if (s.handle->finished() || std::chrono::steady_clock::now() > deadline) break;
            continue;
          }
          tokens[out->index].insert(tokens[out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
          if (out->finish) {
            ++finishes[out->index];
            reasons[out->index] = *out->finish;
          }
          if (++deliveries == cancel_after) s.handle->cancel();
        }
        for (int k = 0; k < r.n; ++k) {
          ASSERT_EQ(finishes[k], 1) << "thread " << t << " request " << i << " sample " << k;
          Expected e = generate_alone(r, k, *r.sampling.seed, kEos, kVocab, 4096);
          if (reasons[k] == FinishReason::Abort) {
            ASSERT_GE(cancel_after, 0);
            ASSERT_LE(tokens[k].size(), e.tokens.size());
            EXPECT_TRUE(std::equal(tokens[k].begin(), tokens[k].end(), e.tokens.begin()));
          } else {
            EXPECT_EQ(tokens[k], e.tokens);
            EXPECT_EQ(reasons[k], e.finish);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(wait_until([&] {
    EngineStats st = loop->stats();
    return st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0;
  }));
  loop->shutdown(1s);
}

TEST(EngineLoop, CancelAbortsAndFreesBlocks) {
  FakeBackend backend(kVocab, 300, 4);
  backend.delay = 1ms;
  auto loop = EngineLoop::start(backend, loop_config());
  GenerationRequest r = make_request(1, 5, 1000);
  r.stop.ignore_eos = true;
  SubmitResult s = loop->submit(r);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  auto first = s.handle->next(5s);
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->finish.has_value());
  s.handle->cancel();
  Result rest = collect(*s.handle, 1);
  ASSERT_TRUE(rest.reason[0].has_value());
  EXPECT_EQ(*rest.reason[0], FinishReason::Abort);
  EXPECT_TRUE(rest.error[0].empty());
  EXPECT_LT(rest.tokens[0].size(), 900u);
  EXPECT_TRUE(wait_until([&] { return loop->stats().kv_blocks_used == 0 && loop->stats().running == 0; }));
  s.handle->cancel();  // after finishing: harmless
  loop->shutdown(1s);
}

TEST(EngineLoop, CancelSampleStopsOnlyThatSample) {
  FakeBackend backend(kVocab, 300, 4);
  backend.delay = 1ms;
  auto loop = EngineLoop::start(backend, loop_config());
  EXPECT_EQ(loop->max_samples_per_request(), loop_config().max_num_seqs);
  GenerationRequest r = make_request(7, 6, 200);  // long enough that the cancel lands mid-generation
  r.stop.ignore_eos = true;
  r.n = 3;
  SubmitResult s = loop->submit(r);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  Result got;
  got.tokens.resize(3);
  got.reason.resize(3);
  got.error.resize(3);
  bool cancelled = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto out = s.handle->next(50ms);
    if (!out) {
      if (s.handle->finished() || std::chrono::steady_clock::now() > deadline) break;
      continue;
    }
    ASSERT_FALSE(got.reason[out->index].has_value()) << "delivery after finish";
    got.tokens[out->index].insert(got.tokens[out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
    if (out->finish) got.reason[out->index] = out->finish;
    if (!cancelled && got.tokens[1].size() >= 2) {
      s.handle->cancel_sample(1);
      s.handle->cancel_sample(1);   // repeated: one cancel
      s.handle->cancel_sample(7);   // out of range: ignored
      s.handle->cancel_sample(-1);
      cancelled = true;
    }
  }
  ASSERT_TRUE(s.handle->finished());
  ASSERT_TRUE(got.reason[1].has_value());
  EXPECT_EQ(*got.reason[1], FinishReason::Abort);
  EXPECT_LT(got.tokens[1].size(), 200u);
  for (int k : {0, 2}) {
    Expected e = generate_alone(r, k, *r.sampling.seed, kEos, kVocab, 4096);
    EXPECT_EQ(got.tokens[k], e.tokens) << "sample " << k;
    ASSERT_TRUE(got.reason[k].has_value());
    EXPECT_EQ(*got.reason[k], FinishReason::Length);
  }
  Expected e1 = generate_alone(r, 1, *r.sampling.seed, kEos, kVocab, 4096);
  EXPECT_TRUE(std::equal(got.tokens[1].begin(), got.tokens[1].end(), e1.tokens.begin()));
  EXPECT_TRUE(wait_until([&] { return loop->stats().kv_blocks_used == 0 && loop->stats().running == 0; }));
  EXPECT_EQ(loop->stats().prompt_tokens, 6u);  // one prefill for the three samples
  s.handle->cancel_sample(0);  // after finishing: harmless
  s.handle->cancel();
  loop->shutdown(1s);
}

TEST(EngineLoop, RandomSampleCancelsFromManyThreadsLeaveNothingBehind) {
  FakeBackend backend(kVocab, 24, 4);  // small enough to preempt
  auto loop = EngineLoop::start(backend, loop_config());
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 12; ++i) {
        GenerationRequest r = make_request(5000 + t * 100 + i, 2 + static_cast<int>(rng() % 14), 1 + static_cast<int>(rng() % 20));
        r.n = 2 + static_cast<int>(rng() % 2);
        // Which sample to cancel after how many deliveries (0: right after submit); sometimes the whole request too.
        const int victim = static_cast<int>(rng() % r.n);
        const int cancel_after = static_cast<int>(rng() % 6);
        const int cancel_all_after = rng() % 4 == 0 ? static_cast<int>(rng() % 8) : -1;
        SubmitResult s = loop->submit(r);
        ASSERT_EQ(s.status, SubmitStatus::Ok) << s.message;
        if (cancel_after == 0) s.handle->cancel_sample(victim);
        std::vector<std::vector<int32_t>> tokens(r.n);
        std::vector<int> finishes(r.n, 0);
        std::vector<FinishReason> reasons(r.n);
        int deliveries = 0;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        for (;;) {
          auto out = s.handle->next(20ms);
          if (!out) {
            if (s.handle->finished() || std::chrono::steady_clock::now() > deadline) break;
            continue;
          }
          tokens[out->index].insert(tokens[out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
          if (out->finish) {
            ++finishes[out->index];
            reasons[out->index] = *out->finish;
          }
          ++deliveries;
          if (deliveries == cancel_after) s.handle->cancel_sample(victim);
          if (deliveries == cancel_all_after) s.handle->cancel();
        }
        for (int k = 0; k < r.n; ++k) {
          ASSERT_EQ(finishes[k], 1) << "thread " << t << " request " << i << " sample " << k;
          Expected e = generate_alone(r, k, *r.sampling.seed, kEos, kVocab, 4096);
          if (reasons[k] == FinishReason::Abort) {
            ASSERT_TRUE(k == victim || cancel_all_after >= 0) << "thread " << t << " request " << i << " sample " << k;
            ASSERT_LE(tokens[k].size(), e.tokens.size());
            EXPECT_TRUE(std::equal(tokens[k].begin(), tokens[k].end(), e.tokens.begin()));
          } else {
            EXPECT_EQ(tokens[k], e.tokens) << "thread " << t << " request " << i << " sample " << k;
            EXPECT_EQ(reasons[k], e.finish);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(wait_until([&] {
    EngineStats st = loop->stats();
    return st.kv_blocks_used == 0 && st.running == 0 && st.waiting == 0;
  }));
  loop->shutdown(1s);
}

TEST(EngineLoop, ShutdownDrainsRunningRequests) {
  FakeBackend backend(kVocab, 64, 4);
  backend.delay = 1ms;
  auto loop = EngineLoop::start(backend, loop_config());
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest r = make_request(i, 4, 20);
    r.stop.ignore_eos = true;
    SubmitResult s = loop->submit(r);
    ASSERT_EQ(s.status, SubmitStatus::Ok);
    handles.push_back(s.handle);
  }
  loop->shutdown(10s);
  for (auto& h : handles) {
    Result got = collect(*h, 1, 1s);
    ASSERT_TRUE(got.reason[0].has_value());
    EXPECT_EQ(*got.reason[0], FinishReason::Length);
    EXPECT_EQ(got.tokens[0].size(), 20u);
  }
  SubmitResult late = loop->submit(make_request(9, 4, 4));
  EXPECT_EQ(late.status, SubmitStatus::ShuttingDown);
  EXPECT_EQ(late.handle, nullptr);
}

TEST(EngineLoop, ShutdownTimeoutAbortsTheRest) {
  FakeBackend backend(kVocab, 300, 4);
  backend.delay = 2ms;
  auto loop = EngineLoop::start(backend, loop_config());
  GenerationRequest r = make_request(3, 4, 1000);
  r.stop.ignore_eos = true;
  SubmitResult s = loop->submit(r);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  ASSERT_TRUE(s.handle->next(5s).has_value());
  const auto start = std::chrono::steady_clock::now();
  loop->shutdown(30ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  Result got = collect(*s.handle, 1, 1s);
  ASSERT_TRUE(got.reason[0].has_value());
  EXPECT_EQ(*got.reason[0], FinishReason::Abort);
}

TEST(EngineLoop, BackendErrorFailsItsStepAndTheLoopKeepsServing) {
  FakeBackend backend(kVocab, 64, 4);
  constexpr int32_t kPoison = 31;
  std::atomic<bool> armed{true};
  backend.before_forward = [&](const Batch& b) {
    if (armed && std::find(b.token_ids.begin(), b.token_ids.end(), kPoison) != b.token_ids.end())
      throw nibble::Error("simulated device fault");
  };
  auto loop = EngineLoop::start(backend, loop_config());
  GenerationRequest bad = make_request(5, 4, 5);
  bad.prompt = {kPoison, 3, 4};
  SubmitResult s = loop->submit(bad);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  Result got = collect(*s.handle, 1);
  ASSERT_TRUE(got.reason[0].has_value());
  EXPECT_EQ(*got.reason[0], FinishReason::Error);
  EXPECT_NE(got.error[0].find("simulated device fault"), std::string::npos) << got.error[0];

  GenerationRequest good = make_request(6, 4, 6);
  good.stop.ignore_eos = true;
  SubmitResult ok = loop->submit(good);
  ASSERT_EQ(ok.status, SubmitStatus::Ok);
  Result fine = collect(*ok.handle, 1);
  EXPECT_EQ(fine.tokens[0], generate_alone(good, 0, *good.sampling.seed, kEos, kVocab, 4096).tokens);
  EXPECT_TRUE(wait_until([&] { return loop->stats().kv_blocks_used == 0; }));
  loop->shutdown(1s);
}

TEST(EngineLoop, RefusesTooLongInvalidAndQueueFull) {
  FakeBackend backend(kVocab, 300, 4, /*max_position_embeddings=*/128);
  backend.delay = 1ms;
  auto config = loop_config();
  config.max_num_seqs = 1;
  config.max_waiting = 1;
  auto loop = EngineLoop::start(backend, config);
  EXPECT_EQ(loop->max_model_len(), 128);

  SubmitResult too_long = loop->submit(make_request(1, 100, 29));
  EXPECT_EQ(too_long.status, SubmitStatus::TooLong);
  EXPECT_NE(too_long.message.find("128"), std::string::npos);
  EXPECT_NE(too_long.message.find("129"), std::string::npos);

  GenerationRequest invalid = make_request(1, 4, 4);
  invalid.sampling.top_p = 1.5;
  EXPECT_EQ(loop->submit(invalid).status, SubmitStatus::Invalid);

  GenerationRequest longer = make_request(2, 4, 100);
  longer.stop.ignore_eos = true;
  SubmitResult a = loop->submit(longer);
  ASSERT_EQ(a.status, SubmitStatus::Ok);
  ASSERT_TRUE(a.handle->next(5s).has_value());  // a is running: the single seat is taken
  SubmitResult b = loop->submit(longer);
  ASSERT_EQ(b.status, SubmitStatus::Ok);
  SubmitResult c = loop->submit(longer);
  EXPECT_EQ(c.status, SubmitStatus::QueueFull);
  EXPECT_FALSE(c.message.empty());
  a.handle->cancel();
  b.handle->cancel();
  EXPECT_EQ(*collect(*a.handle, 1).reason[0], FinishReason::Abort);
  EXPECT_EQ(*collect(*b.handle, 1).reason[0], FinishReason::Abort);
  loop->shutdown(1s);
}

TEST(EngineLoop, GreedyStepsUseTheBackendArgmaxHook) {
  FakeBackend backend(kVocab, 64, 4);
  std::atomic<int> hook_calls{0};
  EngineLoopOptions options;
  options.sampling_threads = 2;
  options.forward_greedy = [&](const Batch& batch) {
    ++hook_calls;
    std::vector<float> logits;
    backend.forward(batch, logits);
    std::vector<int32_t> tokens;
    for (size_t r = 0; r < batch.logits_indices.size(); ++r) {
      auto row = std::span(logits).subspan(r * kVocab, kVocab);
      tokens.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    }
    return tokens;
  };
  auto loop = EngineLoop::start(backend, loop_config(), options);
  GenerationRequest g = make_request(1, 6, 8);
  g.sampling.temperature = 0;
  g.stop.ignore_eos = true;
  SubmitResult s = loop->submit(g);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  Result got = collect(*s.handle, 1);
  EXPECT_EQ(got.tokens[0], generate_alone(g, 0, 0, kEos, kVocab, 4096).tokens);
  EXPECT_EQ(hook_calls.load(), 8);
  EXPECT_EQ(backend.steps.load(), 8);  // every step went through the hook

  GenerationRequest sampled = make_request(2, 6, 5);
  sampled.stop.ignore_eos = true;
  s = loop->submit(sampled);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  got = collect(*s.handle, 1);
  EXPECT_EQ(got.tokens[0], generate_alone(sampled, 0, *sampled.sampling.seed, kEos, kVocab, 4096).tokens);
  EXPECT_EQ(hook_calls.load(), 8);  // sampled steps need the logits
  loop->shutdown(1s);
}

TEST(EngineLoop, RejectsMaxModelLenBeyondTheModel) {
  FakeBackend backend(kVocab, 300, 4, 128);
  auto config = loop_config();
  config.max_model_len = 256;
  EXPECT_THROW(EngineLoop::start(backend, config), nibble::Error);
}

TEST(EngineLoop, MaxModelLenFitsTheKvCache) {
  FakeBackend backend(kVocab, 10, 4, /*max_position_embeddings=*/128);
  auto loop = EngineLoop::start(backend, loop_config());
  EXPECT_EQ(loop->max_model_len(), 40);  // 10 blocks of 4: capped, not the model's 128
  loop->shutdown(0ms);
  auto config = loop_config();
  config.max_model_len = 64;  // asked for explicitly: an error, not a silent cap
  try {
    EngineLoop::start(backend, config);
    ADD_FAILURE() << "expected an error";
  } catch (const nibble::Error& e) {
    EXPECT_NE(std::string(e.what()).find("KV cache"), std::string::npos) << e.what();
  }
  config.max_model_len = 32;
  EXPECT_EQ(EngineLoop::start(backend, config)->max_model_len(), 32);
}

TEST(EngineLoop, UsesModelEosWhenConfigHasNone) {
  FakeBackend backend(kVocab, 64, 4, 4096, {7});
  auto config = loop_config();
  config.eos_token_ids.clear();
  auto loop = EngineLoop::start(backend, config);
  GenerationRequest r = make_request(1, 4, 10);
  r.sampling.temperature = 0;
  r.sampling.logit_bias[7] = 100.0f;
  SubmitResult s = loop->submit(r);
  ASSERT_EQ(s.status, SubmitStatus::Ok);
  Result got = collect(*s.handle, 1);
  EXPECT_EQ(got.tokens[0], (std::vector<int32_t>{7}));
  EXPECT_EQ(*got.reason[0], FinishReason::Stop);
  loop->shutdown(1s);
}

TEST(EngineLoop, IdleLoopDoesNotSpin) {
  FakeBackend backend(kVocab, 64, 4);
  auto loop = EngineLoop::start(backend, loop_config());
  const std::clock_t before = std::clock();
  std::this_thread::sleep_for(300ms);
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - before) / CLOCKS_PER_SEC;
  EXPECT_LT(cpu_ms, 30.0);
  EXPECT_EQ(backend.steps.load(), 0);
  loop->shutdown(1s);
}

TEST(EngineLoop, DestructorShutsDownCleanly) {
  FakeBackend backend(kVocab, 300, 4);
  backend.delay = 1ms;
  std::shared_ptr<RequestHandle> handle;
  {
    auto loop = EngineLoop::start(backend, loop_config());
    GenerationRequest r = make_request(1, 4, 1000);
    r.stop.ignore_eos = true;
    handle = loop->submit(r).handle;
    ASSERT_TRUE(handle);
  }
  Result got = collect(*handle, 1, 1s);
  ASSERT_TRUE(got.reason[0].has_value());
  EXPECT_EQ(*got.reason[0], FinishReason::Abort);
  handle->cancel();  // the loop is gone: a no-op
}

}  // namespace
}  // namespace nibble::testing
