// The host side of GPU sampling (kernels/sampling/sample_jobs_host.h): what
// each sample's job and entries say must be exactly steps 2-5 of sampler.h.
// Applying the entries the way the kernel does (Row::apply in sampling.cu)
// must give the logits the CPU Sampler's apply_penalties gives, checked
// through greedy sampling on rows where the penalties decide the argmax.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "nibble/core/error.h"
#include "nibble/engine/sampler.h"
#include "sampling/sample_jobs_host.h"

namespace nibble::kernels {
namespace {

// The kernel's per-entry rule, on the host.
float apply(float x, const SampleEntry& e, float repetition_penalty) {
  if (e.flags & kEntryBias) x += e.bias;
  if (e.flags & kEntrySuppress) x = -INFINITY;
  if (e.flags & kEntryRepeat) x = x > 0.0f ? x / repetition_penalty : x * repetition_penalty;
  if (e.flags & kEntryCounted) x -= e.subtract;
  return x;
}

TEST(SampleJobBuilder, OneSortedEntryPerTouchedId) {
  SampleJobBuilder b(100);
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 5;
  p.top_p = 0.9;
  p.min_p = 0.1;
  p.typical_p = 0.8;
  p.repetition_penalty = 1.3;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.25;
  p.logit_bias = {{7, 2.0f}, {150, 1.0f}, {-1, 1.0f}};
  p.logprobs = true;
  p.top_logprobs = 3;
  const std::vector<int32_t> prompt = {9, 3, 3, 120};
  const std::vector<int32_t> output = {3, 4, 4, 4, -5};
  const std::vector<int32_t> suppressed = {0, 7};
  SampleInput in;
  in.params = &p;
  in.prompt_tokens = prompt;
  in.output_tokens = output;
  in.suppressed_tokens = suppressed;
  in.seed = 42;
  ASSERT_TRUE(b.add(3, in, 1000));
  ASSERT_EQ(b.jobs().size(), 1u);
  const SampleJob& j = b.jobs()[0];
  EXPECT_EQ(j.logits_row, 3);
  EXPECT_EQ(j.entry_begin, 0);
  EXPECT_EQ(j.entry_count, 5);  // 0, 3, 4, 7, 9
  EXPECT_FLOAT_EQ(j.repetition_penalty, 1.3f);
  EXPECT_EQ(j.temperature, 0.7);
  EXPECT_EQ(j.top_k, 5);
  EXPECT_EQ(j.top_p, 0.9);
  EXPECT_EQ(j.min_p, 0.1);
  EXPECT_EQ(j.typical_p, 0.8);
  EXPECT_EQ(j.seed, 42u);
  EXPECT_EQ(j.counter, 5u);  // tokens generated before, out-of-range ones included
  EXPECT_EQ(j.logprobs, 1);
  EXPECT_EQ(j.top_logprobs, 3);
  const auto& e = b.entries();
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e[0].id, 0);
  EXPECT_EQ(e[0].flags, uint32_t{kEntrySuppress});
  EXPECT_EQ(e[1].id, 3);
  EXPECT_EQ(e[1].flags, uint32_t{kEntryRepeat | kEntryCounted});
  EXPECT_EQ(e[1].subtract, static_cast<float>(0.5 * 1 + 0.25));
  EXPECT_EQ(e[2].id, 4);
  EXPECT_EQ(e[2].subtract, static_cast<float>(0.5 * 3 + 0.25));
  EXPECT_EQ(e[3].id, 7);
  EXPECT_EQ(e[3].flags, uint32_t{kEntryBias | kEntrySuppress});
  EXPECT_EQ(e[3].bias, 2.0f);
  EXPECT_EQ(e[4].id, 9);
  EXPECT_EQ(e[4].flags, uint32_t{kEntryRepeat});

  // A second job's entries follow the first's; the scratch was reset.
  SamplingParams plain;
  SampleInput in2;
  in2.params = &plain;
  in2.prompt_tokens = prompt;
  ASSERT_TRUE(b.add(0, in2, 1000));
  EXPECT_EQ(b.jobs()[1].entry_begin, 5);
  EXPECT_EQ(b.jobs()[1].entry_count, 0);
  EXPECT_EQ(b.jobs()[1].logprobs, 0);
  b.clear();
  EXPECT_TRUE(b.jobs().empty());
  EXPECT_TRUE(b.entries().empty());
}

TEST(SampleJobBuilder, RefusesWhatTheDeviceCannotTake) {
  SampleJobBuilder b(50);
  SamplingParams p;
  p.repetition_penalty = 1.1;
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i) prompt[i] = i;
  SampleInput in;
  in.params = &p;
  in.prompt_tokens = prompt;
  EXPECT_FALSE(b.add(0, in, 39));  // 40 entries do not fit: nothing is appended
  EXPECT_TRUE(b.jobs().empty());
  EXPECT_TRUE(b.entries().empty());
  EXPECT_TRUE(b.add(0, in, 40));
  SamplingParams many;
  many.logprobs = true;
  many.top_logprobs = kMaxSampleTopLogprobs + 1;
  SampleInput in2;
  in2.params = &many;
  EXPECT_FALSE(b.add(1, in2, 1000));
  EXPECT_EQ(b.jobs().size(), 1u);
  SampleInput none;
  EXPECT_THROW(b.add(0, none, 1000), Error);
  EXPECT_THROW(SampleJobBuilder(0), Error);
}

TEST(SampleJobBuilder, EntriesReproduceTheSamplersPenalties) {
  // Greedy on rows where the penalties decide the winner: the CPU Sampler on
  // the raw row and argmax over the row with the entries applied must agree.
  const int vocab = 64;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> id(0, vocab - 1);
  Sampler sampler;
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<float> row(vocab);
    for (auto& v : row) v = normal(rng);
    SamplingParams p;
    p.temperature = 0.0;
    p.repetition_penalty = std::uniform_real_distribution<double>(0.5, 2.0)(rng);
    p.frequency_penalty = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
    p.presence_penalty = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
    for (int k = 0; k < 4; ++k) p.logit_bias[id(rng)] = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
    std::vector<int32_t> prompt, output, suppressed;
    for (int k = 0; k < 10; ++k) prompt.push_back(id(rng) % 16);
    for (int k = 0; k < 10; ++k) output.push_back(id(rng) % 16);
    if (trial % 3 == 0) suppressed = {static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin())};
    SampleInput in;
    in.logits = row;
    in.params = &p;
    in.prompt_tokens = prompt;
    in.output_tokens = output;
    in.suppressed_tokens = suppressed;
    SampleJobBuilder b(vocab);
    ASSERT_TRUE(b.add(0, in, 1000));
    std::vector<float> x = row;
    for (const SampleEntry& e : b.entries()) x[e.id] = apply(x[e.id], e, b.jobs()[0].repetition_penalty);
    int best = 0;
    for (int i = 1; i < vocab; ++i)
      if (x[i] > x[best]) best = i;
    EXPECT_EQ(sampler.sample(in).token, best) << "trial " << trial;
  }
}

TEST(SampleJobBuilder, ResultsCarryLogprobsOnlyWhenAsked) {
  SampleOutput out{};
  out.token = 5;
  out.logprob = -0.25f;
  out.num_top = 2;
  out.top_ids[0] = 5;
  out.top_logprobs[0] = -0.25f;
  out.top_ids[1] = 9;
  out.top_logprobs[1] = -1.5f;
  const SampleResult with = to_sample_result(out, true);
  EXPECT_EQ(with.token, 5);
  EXPECT_EQ(with.logprob.token, 5);
  EXPECT_EQ(with.logprob.logprob, -0.25f);
  ASSERT_EQ(with.logprob.top.size(), 2u);
  EXPECT_EQ(with.logprob.top[1], (std::pair<int32_t, float>{9, -1.5f}));
  const SampleResult without = to_sample_result(out, false);
  EXPECT_EQ(without.token, 5);
  EXPECT_TRUE(without.logprob.top.empty());
}

}  // namespace
}  // namespace nibble::kernels
