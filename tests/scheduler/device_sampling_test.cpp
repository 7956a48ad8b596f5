// The device-sampling path of the scheduler and the engine loop
// (Scheduler::prepare_sampling -> Backend::forward_sample ->
// Scheduler::update_with_samples) against the host path (forward -> update),
// with a fake backend whose forward_sample runs the CPU Sampler: same tokens,
// logprobs and finishes for mixed parameters, n > 1, stop tokens, min_tokens
// and preemption.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "nibble/core/error.h"
#include "test_support.h"

namespace nibble::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kVocab = 48;
const std::vector<int32_t> kEos = {0};

// Draws on the "device" with the CPU Sampler, from rows it keeps to itself.
class DeviceSamplingBackend : public FakeBackend {
 public:
  using FakeBackend::FakeBackend;
  bool has_device_sampling() const override { return true; }
  std::vector<SampleResult> forward_sample(const Batch& batch, std::span<const SampleRow> rows) override {
    ++sample_calls;
    std::vector<float> logits;
    forward(batch, logits);
    std::vector<SampleResult> out;
    std::set<int> distinct;
    for (const SampleRow& row : rows) {
      SampleInput in = row.input;
      EXPECT_TRUE(in.logits.empty());
      in.logits = std::span<const float>(logits).subspan(static_cast<size_t>(row.logits_row) * kVocab, kVocab);
      out.push_back(sampler_.sample(in));
      distinct.insert(row.logits_row);
    }
    if (distinct.size() < rows.size()) ++shared_row_calls;
    return out;
  }
  std::atomic<int> sample_calls{0};
  std::atomic<int> shared_row_calls{0};

 private:
  Sampler sampler_;
};

std::vector<GenerationRequest> mixed_requests() {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < 14; ++i) {
    GenerationRequest r;
    const int len = 5 + (i * 7) % 23;
    for (int t = 0; t < len; ++t) r.prompt.push_back(1 + static_cast<int32_t>(splitmix64(i * 1000ull + t) % (kVocab - 1)));
    r.stop.max_tokens = 6 + (i * 5) % 17;
    SamplingParams& p = r.sampling;
    p.seed = 1000 + i;
    switch (i % 7) {
      case 0: p.temperature = 0.8; p.top_p = 0.9; break;
      case 1: p.temperature = 1.2; p.top_k = 5; p.logprobs = true; p.top_logprobs = 3; break;
      case 2: p.temperature = 0.7; p.min_p = 0.1; p.repetition_penalty = 1.3; p.frequency_penalty = 0.5; break;
      case 3: p.temperature = 1.0; p.typical_p = 0.8; p.presence_penalty = 0.7; p.logit_bias = {{3, 5.0f}, {9, -100.0f}}; break;
      case 4: p.temperature = 0.0; p.logprobs = true; p.top_logprobs = 2; break;  // greedy but not plain argmax
      case 5: p.temperature = 0.9; r.n = 3; break;
      case 6: p.temperature = 0.0; break;  // plain greedy
    }
    if (i % 4 == 1) r.stop.stop_token_ids = {5, 7};
    if (i % 3 == 0) r.stop.min_tokens = 3;
    if (i == 12) r.stop.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<TokenLogprob>> logprobs;
  std::vector<std::optional<FinishReason>> reason;
  std::vector<bool> by_stop_token;
};

void record(std::map<uint64_t, Outcome>& into, const std::vector<Delivery>& deliveries) {
  for (const Delivery& d : deliveries) {
    Outcome& o = into[d.request_key];
    const size_t index = static_cast<size_t>(d.output.index);
    if (o.tokens.size() <= index) {
      o.tokens.resize(index + 1);
      o.logprobs.resize(index + 1);
      o.reason.resize(index + 1);
      o.by_stop_token.resize(index + 1);
    }
    o.tokens[index].insert(o.tokens[index].end(), d.output.new_tokens.begin(), d.output.new_tokens.end());
    o.logprobs[index].insert(o.logprobs[index].end(), d.output.logprobs.begin(), d.output.logprobs.end());
    if (d.output.finish) o.reason[index] = d.output.finish;
    if (d.output.finished_by_stop_token) o.by_stop_token[index] = true;
  }
}

void expect_same(const std::map<uint64_t, Outcome>& got, const std::map<uint64_t, Outcome>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    const Outcome& g = got.at(key);
    EXPECT_EQ(g.tokens, w.tokens) << "request " << key;
    EXPECT_EQ(g.reason, w.reason) << "request " << key;
    EXPECT_EQ(g.by_stop_token, w.by_stop_token) << "request " << key;
    ASSERT_EQ(g.logprobs.size(), w.logprobs.size());
    for (size_t s = 0; s < w.logprobs.size(); ++s) {
      ASSERT_EQ(g.logprobs[s].size(), w.logprobs[s].size()) << "request " << key;
      for (size_t t = 0; t < w.logprobs[s].size(); ++t) {
        EXPECT_EQ(g.logprobs[s][t].token, w.logprobs[s][t].token);
        EXPECT_EQ(g.logprobs[s][t].logprob, w.logprobs[s][t].logprob);
        EXPECT_EQ(g.logprobs[s][t].top, w.logprobs[s][t].top);
      }
    }
  }
}

SchedulerConfig config(int max_seqs, int max_tokens) {
  SchedulerConfig c;
  c.max_num_seqs = max_seqs;
  c.max_num_batched_tokens = max_tokens;
  c.eos_token_ids = kEos;
  return c;
}

// Steps a scheduler to the end through the host path or the device path.
std::map<uint64_t, Outcome> run_scheduler(Backend& backend, bool device, int num_blocks, uint64_t* preemptions) {
  Scheduler sched(config(8, 24), backend.kv_cache_shape(), kVocab, 4096);
  const auto requests = mixed_requests();
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_TRUE(sched.add_request(i + 1, requests[i]).ok());
  std::map<uint64_t, Outcome> out;
  std::vector<float> logits;
  for (int steps = 0; sched.has_unfinished() && steps < 10000; ++steps) {
    SchedulerStep step = sched.schedule();
    if (step.empty()) break;
    if (device && !step.batch.logits_indices.empty()) {
      const std::vector<SampleRow> rows = sched.prepare_sampling(step);
      record(out, sched.update_with_samples(step, backend.forward_sample(step.batch, rows)));
    } else {
      backend.forward(step.batch, logits);
      record(out, sched.update(step, logits));
    }
    sched.check_invariants();
  }
  EXPECT_FALSE(sched.has_unfinished());
  if (preemptions) *preemptions = sched.stats().preemptions;
  (void)num_blocks;
  return out;
}

TEST(DeviceSampling, SchedulerGivesTheHostPathsOutputs) {
  for (int blocks : {200, 14}) {  // 14 blocks of 4 tokens: preemptions and recompute
    FakeBackend host_backend(kVocab, blocks, 4);
    DeviceSamplingBackend device_backend(kVocab, blocks, 4);
    uint64_t host_preempted = 0, device_preempted = 0;
    const auto want = run_scheduler(host_backend, false, blocks, &host_preempted);
    const auto got = run_scheduler(device_backend, true, blocks, &device_preempted);
    expect_same(got, want);
    EXPECT_EQ(device_preempted, host_preempted);
    if (blocks == 14) {
      EXPECT_GT(host_preempted, 0u);
    }
    EXPECT_GT(device_backend.sample_calls.load(), 0);
    EXPECT_GT(device_backend.shared_row_calls.load(), 0);  // the n = 3 request forks from one row
  }
}

TEST(DeviceSampling, MatchesRunningEachRequestAlone) {
  DeviceSamplingBackend backend(kVocab, 200, 4);
  const auto got = run_scheduler(backend, true, 200, nullptr);
  const auto requests = mixed_requests();
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerationRequest& r = requests[i];
    for (int index = 0; index < r.n; ++index) {
      const Expected e = generate_alone(r, index, *r.sampling.seed, kEos, kVocab, 4096);
      EXPECT_EQ(got.at(i + 1).tokens[index], e.tokens) << "request " << i << " sample " << index;
      EXPECT_EQ(got.at(i + 1).reason[index], e.finish) << "request " << i << " sample " << index;
    }
  }
}

std::map<uint64_t, Outcome> run_loop(Backend& backend, bool device_sampling) {
  EngineLoopOptions options;
  options.sampling_threads = 2;
  options.device_sampling = device_sampling;
  auto loop = EngineLoop::start(backend, config(6, 20), options);
  const auto requests = mixed_requests();
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const auto& r : requests) {
    SubmitResult s = loop->submit(r);
    EXPECT_EQ(s.status, SubmitStatus::Ok) << s.message;
    handles.push_back(s.handle);
  }
  std::map<uint64_t, Outcome> out;
  for (size_t i = 0; i < handles.size(); ++i) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!handles[i]->finished() && std::chrono::steady_clock::now() < deadline) {
      if (auto o = handles[i]->next(50ms)) record(out, {Delivery{i + 1, *o}});
    }
    while (auto o = handles[i]->next(0ms)) record(out, {Delivery{i + 1, *o}});
  }
  loop->shutdown(1s);
  return out;
}

TEST(DeviceSampling, EngineLoopUsesForwardSampleAndKeepsOutputs) {
  FakeBackend host_backend(kVocab, 40, 4);
  DeviceSamplingBackend device_backend(kVocab, 40, 4);
  DeviceSamplingBackend disabled_backend(kVocab, 40, 4);
  const auto want = run_loop(host_backend, true);
  const auto got = run_loop(device_backend, true);
  const auto host_again = run_loop(disabled_backend, false);
  expect_same(got, want);
  expect_same(host_again, want);
  EXPECT_GT(device_backend.sample_calls.load(), 0);
  EXPECT_EQ(disabled_backend.sample_calls.load(), 0);  // device_sampling = false keeps the host Sampler
}

TEST(DeviceSampling, DefaultForwardSampleIsTheHostSampler) {
  FakeBackend backend(kVocab, 40, 4);
  EXPECT_FALSE(backend.has_device_sampling());
  DeviceSamplingBackend reference(kVocab, 40, 4);
  const auto want = run_scheduler(reference, true, 40, nullptr);
  const auto got = run_scheduler(backend, true, 40, nullptr);  // Backend::forward_sample
  expect_same(got, want);
}

TEST(DeviceSampling, ResultCountMismatchIsAnError) {
  FakeBackend backend(kVocab, 40, 4);
  Scheduler sched(config(8, 24), backend.kv_cache_shape(), kVocab, 4096);
  GenerationRequest r = mixed_requests()[0];
  ASSERT_TRUE(sched.add_request(1, r).ok());
  SchedulerStep step = sched.schedule();
  const std::vector<SampleRow> rows = sched.prepare_sampling(step);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_THROW(sched.update_with_samples(step, std::vector<SampleResult>{}), Error);
  std::vector<SampleResult> bad(1);
  bad[0].token = kVocab;
  EXPECT_THROW(sched.update_with_samples(step, bad), Error);
}

}  // namespace
}  // namespace nibble::testing
