// The scheduler and engine loop over the real CPU backend on the tiny demo
// model: batched, chunked, prefix-cached and preempted generation must give
// each request exactly what it gives when run alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>
#include <unistd.h>

#include "nibble/engine/cpu_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "test_support.h"

namespace nibble::testing {
namespace {

using namespace std::chrono_literals;

class CpuBackendScheduler : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::path(NIBBLE_BINARY_DIR) / ("scheduler-demo-model-" + std::to_string(::getpid()));
    DemoModelOptions options;
    options.preset = "tiny";
    options.seed = 11;
    write_demo_model_weights(dir_, options);
    model_ = load_model(dir_).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static std::vector<GenerationRequest> workload(int vocab) {
    std::vector<GenerationRequest> reqs;
    std::vector<int32_t> shared;
    for (int i = 0; i < 13; ++i) shared.push_back(3 + static_cast<int32_t>(splitmix64(i) % (vocab - 3)));
    for (int k = 0; k < 6; ++k) {
      GenerationRequest r;
      if (k % 2 == 0) r.prompt = shared;
      const int extra = 2 + 5 * k;
      for (int i = 0; i < extra; ++i) r.prompt.push_back(3 + static_cast<int32_t>(splitmix64(100 * k + i) % (vocab - 3)));
      r.stop.max_tokens = 10 + k;
      r.stop.ignore_eos = k % 3 == 0;
      if (k % 2 == 1) {
        r.sampling.temperature = 0.8;
        r.sampling.top_p = 0.95;
        r.sampling.seed = 1000 + k;
      } else {
        r.sampling.temperature = 0.0;
      }
      if (k == 3) r.n = 2;
      reqs.push_back(r);
    }
    return reqs;
  }

  // Runs the requests through a fresh scheduler and returns per-request, per-sample tokens.
  static std::vector<Collected> run(Backend& backend, const SchedulerConfig& config,
                                    const std::vector<GenerationRequest>& reqs, EngineStats* stats = nullptr) {
    Driver d(backend, config, 2048);
    for (size_t k = 0; k < reqs.size(); ++k) {
      ValidationResult v = d.add(k + 1, reqs[k]);
      EXPECT_TRUE(v.ok()) << v.message;
    }
    d.run();
    EXPECT_EQ(d.sched.block_pool().num_used(), 0);
    if (stats) *stats = d.sched.stats();
    std::vector<Collected> out;
    for (size_t k = 0; k < reqs.size(); ++k) out.push_back(d.results[k + 1]);
    return out;
  }

  static inline std::filesystem::path dir_;
  static inline LoadedModel* model_ = nullptr;
};

TEST_F(CpuBackendScheduler, BatchedPreemptedAndCachedRunsMatchRunningAlone) {
  const int vocab = model_->config().vocab_size;
  auto reqs = workload(vocab);
  SchedulerConfig config;
  config.eos_token_ids.assign(model_->config().eos_token_ids.begin(), model_->config().eos_token_ids.end());
  config.max_num_seqs = 4;
  config.max_num_batched_tokens = 12;  // chunked prefill

  auto roomy = make_cpu_backend(*model_, {.kv_cache_blocks = 128, .block_size = 4, .threads = 2});
  std::vector<std::vector<std::vector<int32_t>>> alone;
  for (const auto& r : reqs) {
    SchedulerConfig one = config;
    one.enable_prefix_caching = false;
    alone.push_back(run(*roomy, one, {r})[0].tokens);
  }

  auto tight = make_cpu_backend(*model_, {.kv_cache_blocks = 18, .block_size = 4, .threads = 2});
  EngineStats stats;
  auto batched = run(*tight, config, reqs, &stats);
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.prefix_cache_hits, 0u);
  for (size_t k = 0; k < reqs.size(); ++k) {
    for (int i = 0; i < reqs[k].n; ++i) {
      EXPECT_EQ(batched[k].tokens[i], alone[k][i]) << "request " << k << " sample " << i;
      EXPECT_EQ(batched[k].finishes[i], 1);
    }
  }
}

TEST_F(CpuBackendScheduler, EngineLoopServesConcurrentClients) {
  const int vocab = model_->config().vocab_size;
  auto reqs = workload(vocab);
  SchedulerConfig config;
  config.eos_token_ids.assign(model_->config().eos_token_ids.begin(), model_->config().eos_token_ids.end());
  config.max_num_seqs = 8;
  config.max_num_batched_tokens = 64;

  auto roomy = make_cpu_backend(*model_, {.kv_cache_blocks = 128, .block_size = 16, .threads = 1});
  std::vector<std::vector<std::vector<int32_t>>> alone;
  for (const auto& r : reqs) alone.push_back(run(*roomy, config, {r})[0].tokens);

  auto backend = make_cpu_backend(*model_, {.kv_cache_blocks = 64, .block_size = 16, .threads = 1});
  auto loop = EngineLoop::start(*backend, config);
  EXPECT_EQ(loop->max_model_len(), std::min(model_->config().max_position_embeddings, 64 * 16));
  std::vector<std::thread> clients;
  std::vector<std::vector<std::vector<int32_t>>> got(reqs.size());
  for (size_t k = 0; k < reqs.size(); ++k) {
    clients.emplace_back([&, k] {
      SubmitResult s = loop->submit(reqs[k]);
      ASSERT_EQ(s.status, SubmitStatus::Ok) << s.message;
      got[k].resize(reqs[k].n);
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (!s.handle->finished() && std::chrono::steady_clock::now() < deadline) {
        while (auto out = s.handle->next(20ms)) {
          got[k][out->index].insert(got[k][out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
        }
      }
      while (auto out = s.handle->next(0ms)) {
        got[k][out->index].insert(got[k][out->index].end(), out->new_tokens.begin(), out->new_tokens.end());
      }
      EXPECT_TRUE(s.handle->finished());
    });
  }
  for (auto& c : clients) c.join();
  loop->shutdown(5s);
  for (size_t k = 0; k < reqs.size(); ++k) EXPECT_EQ(got[k], alone[k]) << "request " << k;
}

}  // namespace
}  // namespace nibble::testing
