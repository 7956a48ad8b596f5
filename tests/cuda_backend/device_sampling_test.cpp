// Device sampling on the CUDA backend (Backend::forward_sample) against the
// host path on the same backend (forward() + the CPU Sampler): seeded
// non-greedy requests with mixed parameters, penalties, logprobs and n > 1
// give the same tokens step for step, through the scheduler driven directly
// (identical batches) and through the engine loop. Skips without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "nibble/engine/cuda_backend.h"
#include "nibble/model/demo_model.h"
#include "nibble/model/loader.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/scheduler/scheduler.h"

namespace nibble::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<TokenLogprob>> logprobs;
  std::vector<std::optional<FinishReason>> reason;
};

void record(std::map<uint64_t, Outcome>& into, uint64_t key, const RequestOutput& out) {
  Outcome& o = into[key];
  const size_t index = static_cast<size_t>(out.index);
  if (o.tokens.size() <= index) {
    o.tokens.resize(index + 1);
    o.logprobs.resize(index + 1);
    o.reason.resize(index + 1);
  }
  o.tokens[index].insert(o.tokens[index].end(), out.new_tokens.begin(), out.new_tokens.end());
  o.logprobs[index].insert(o.logprobs[index].end(), out.logprobs.begin(), out.logprobs.end());
  if (out.finish) o.reason[index] = out.finish;
}

std::vector<GenerationRequest> requests(int vocab) {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 9 + 13 * i % 40; ++t) r.prompt.push_back(3 + (i * 131 + t * 17) % (vocab - 3));
    r.stop.max_tokens = 24;
    r.stop.ignore_eos = true;
    SamplingParams& p = r.sampling;
    p.seed = 4242 + i;
    p.temperature = 0.8 + 0.05 * (i % 5);
    switch (i % 6) {
      case 0: p.top_p = 0.95; break;
      case 1: p.top_k = 40; p.logprobs = true; p.top_logprobs = 4; break;
      case 2: p.min_p = 0.05; p.repetition_penalty = 1.2; p.frequency_penalty = 0.3; break;
      case 3: p.typical_p = 0.9; p.logit_bias = {{5, 2.0f}, {6, -50.0f}}; p.presence_penalty = 0.4; break;
      case 4: r.n = 2; p.top_p = 0.9; break;
      case 5: p.temperature = 1.0; break;
    }
    if (i == 7) {
      r.stop.min_tokens = 4;
      r.stop.stop_token_ids = {7, 8, 9};
      r.stop.ignore_eos = false;
    }
    out.push_back(r);
  }
  return out;
}

std::map<uint64_t, Outcome> run_direct(Backend& backend, const std::vector<GenerationRequest>& reqs, bool device) {
  SchedulerConfig sc;
  sc.max_num_seqs = 16;
  sc.max_num_batched_tokens = 256;
  sc.eos_token_ids.assign(backend.config().eos_token_ids.begin(), backend.config().eos_token_ids.end());
  Scheduler sched(sc, backend.kv_cache_shape(), backend.config().vocab_size, 2048);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_TRUE(sched.add_request(i + 1, reqs[i]).ok());
  std::map<uint64_t, Outcome> out;
  std::vector<float> logits;
  for (int steps = 0; sched.has_unfinished() && steps < 2000; ++steps) {
    SchedulerStep step = sched.schedule();
    if (step.empty()) break;
    std::vector<Delivery> d;
    if (device && !step.batch.logits_indices.empty()) {
      const std::vector<SampleRow> rows = sched.prepare_sampling(step);
      d = sched.update_with_samples(step, backend.forward_sample(step.batch, rows));
    } else {
      backend.forward(step.batch, logits);
      d = sched.update(step, logits);
    }
    for (const Delivery& x : d) record(out, x.request_key, x.output);
  }
  EXPECT_FALSE(sched.has_unfinished());
  return out;
}

const LoadedModel& tiny_model() {
  static std::unique_ptr<LoadedModel> model;
  if (model) return *model;
  const char* scratch = std::getenv("NIBBLE_TEST_SCRATCH");
  const fs::path dir = fs::path(scratch ? scratch : NIBBLE_BINARY_DIR) / "cuda_device_sampling_demo";
  fs::remove_all(dir);
  DemoModelOptions demo;
  demo.preset = "tiny";
  demo.seed = 11;
  write_demo_model_weights(dir, demo);
  model = load_model(dir);
  return *model;
}

CudaBackendOptions options() {
  CudaBackendOptions o;
  o.kv_cache_blocks = 200;
  o.max_num_batched_tokens = 256;
  o.max_num_seqs = 16;
  return o;
}

TEST(CudaDeviceSampling, SameTokensAsTheHostPathOnTheSameBackend) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  auto backend = make_cuda_backend(tiny_model(), options());
  ASSERT_TRUE(backend->has_device_sampling());
  const auto reqs = requests(backend->config().vocab_size);
  const auto host = run_direct(*backend, reqs, false);
  const auto device = run_direct(*backend, reqs, true);
  ASSERT_EQ(host.size(), reqs.size());
  ASSERT_EQ(device.size(), reqs.size());
  int tokens = 0;
  for (const auto& [key, want] : host) {
    const Outcome& got = device.at(key);
    EXPECT_EQ(got.tokens, want.tokens) << "request " << key;
    EXPECT_EQ(got.reason, want.reason) << "request " << key;
    for (size_t s = 0; s < want.tokens.size(); ++s) {
      tokens += static_cast<int>(want.tokens[s].size());
      ASSERT_EQ(got.logprobs[s].size(), want.logprobs[s].size());
      for (size_t t = 0; t < want.logprobs[s].size(); ++t) {
        EXPECT_NEAR(got.logprobs[s][t].logprob, want.logprobs[s][t].logprob, 1e-4);
        ASSERT_EQ(got.logprobs[s][t].top.size(), want.logprobs[s][t].top.size());
        for (size_t k = 0; k < want.logprobs[s][t].top.size(); ++k)
          EXPECT_EQ(got.logprobs[s][t].top[k].first, want.logprobs[s][t].top[k].first);
      }
    }
  }
  std::printf("[device sampling] %d tokens compared\n", tokens);
  EXPECT_GT(tokens, 200);
}

TEST(CudaDeviceSampling, EngineLoopSamplesOnTheDevice) {
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
  auto backend = make_cuda_backend(tiny_model(), options());
  const auto reqs = requests(backend->config().vocab_size);
  // One request at a time: the loop's batches equal the direct driver's.
  const std::vector<GenerationRequest> one = {reqs[0]};
  const std::vector<GenerationRequest> two = {reqs[4]};
  for (const auto& batch : {one, two}) {
    const auto want = run_direct(*backend, batch, false);
    for (bool device : {true, false}) {
      SchedulerConfig sc;
      sc.max_num_seqs = 16;
      sc.max_num_batched_tokens = 256;
      EngineLoopOptions lo;
      lo.device_sampling = device;
      auto loop = EngineLoop::start(*backend, sc, lo);
      auto s = loop->submit(batch[0]);
      ASSERT_EQ(s.status, SubmitStatus::Ok) << s.message;
      std::map<uint64_t, Outcome> got;
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      while (!s.handle->finished() && std::chrono::steady_clock::now() < deadline)
        if (auto o = s.handle->next(50ms)) record(got, 1, *o);
      while (auto o = s.handle->next(0ms)) record(got, 1, *o);
      loop->shutdown(1s);
      EXPECT_EQ(got.at(1).tokens, want.at(1).tokens) << (device ? "device" : "host");
    }
  }
}

}  // namespace
}  // namespace nibble::test
