// Each sampler option against a direct computation of the distribution it
// must draw from, using the documented draw (inverse CDF in id order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nibble/engine/sampler.h"

namespace nibble {
namespace {

const std::vector<float> kLogits = {1.5f, -0.5f, 2.0f, 0.25f, 2.0f, -3.0f, 0.9f, 0.0f};

std::vector<double> softmax(const std::vector<double>& x) {
  double m = -INFINITY;
  for (double v : x) m = std::max(m, v);
  std::vector<double> p(x.size());
  double sum = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += p[i] = std::isinf(x[i]) ? 0.0 : std::exp(x[i] - m);
  for (double& v : p) v /= sum;
  return p;
}

std::vector<double> scaled(const std::vector<float>& logits, double temperature) {
  std::vector<double> x(logits.begin(), logits.end());
  for (double& v : x) v /= temperature;
  return x;
}

// The documented draw over a dense distribution (zeros are excluded ids).
int32_t draw(const std::vector<double>& p, uint64_t seed, uint64_t counter) {
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  const double target = sampler_uniform(seed, counter) * total;
  double running = 0;
  int32_t last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    running += p[i];
    last = static_cast<int32_t>(i);
    if (running > target) return last;
  }
  return last;
}

int32_t sample(const SamplingParams& params, uint64_t seed, const std::vector<float>& logits = kLogits,
               std::vector<int32_t> prompt = {}, std::vector<int32_t> output = {},
               std::vector<int32_t> suppressed = {}) {
  Sampler sampler;
  SampleInput in;
  in.logits = logits;
  in.params = &params;
  in.prompt_tokens = prompt;
  in.output_tokens = output;
  in.suppressed_tokens = suppressed;
  in.seed = seed;
  return sampler.sample(in).token;
}

void expect_draws_from(const SamplingParams& params, const std::vector<double>& p, const std::vector<float>& logits = kLogits,
                       std::vector<int32_t> prompt = {}, std::vector<int32_t> output = {},
                       std::vector<int32_t> suppressed = {}) {
  for (uint64_t seed = 0; seed < 400; ++seed) {
    ASSERT_EQ(sample(params, seed, logits, prompt, output, suppressed), draw(p, seed, output.size())) << "seed " << seed;
  }
}

// Keeps the ids in `keep` and renormalizes.
std::vector<double> restrict_to(std::vector<double> p, const std::vector<int>& keep) {
  std::vector<double> out(p.size(), 0.0);
  double sum = 0;
  for (int id : keep) sum += p[id];
  for (int id : keep) out[id] = p[id] / sum;
  return out;
}

TEST(SamplerRng, UniformIsDeterministicAndSpread) {
  EXPECT_EQ(sampler_uniform(7, 3), sampler_uniform(7, 3));
  EXPECT_NE(sampler_uniform(7, 3), sampler_uniform(7, 4));
  EXPECT_NE(sampler_uniform(7, 3), sampler_uniform(8, 3));
  double sum = 0;
  int buckets[10] = {};
  for (uint64_t c = 0; c < 20000; ++c) {
    double u = sampler_uniform(42, c);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    ++buckets[static_cast<int>(u * 10)];
  }
  EXPECT_NEAR(sum / 20000, 0.5, 0.01);
  for (int b : buckets) EXPECT_NEAR(b, 2000, 200);
}

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  p.top_k = 1;
  EXPECT_EQ(sample(p, 1), 2);  // ids 2 and 4 tie at 2.0
  EXPECT_EQ(sample(p, 999), 2);
}

TEST(Sampler, TemperatureDrawsFromScaledSoftmax) {
  for (double t : {0.3, 1.0, 2.5}) {
    SamplingParams p;
    p.temperature = t;
    expect_draws_from(p, softmax(scaled(kLogits, t)));
  }
}

TEST(Sampler, EmpiricalFrequenciesMatchProbabilities) {
  SamplingParams params;
  params.temperature = 1.0;
  auto p = softmax(scaled(kLogits, 1.0));
  std::vector<int> counts(kLogits.size(), 0);
  const int n = 20000;
  for (uint64_t seed = 0; seed < n; ++seed) ++counts[sample(params, seed * 7919 + 1)];
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(counts[i] / double(n), p[i], 0.015) << "token " << i;
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 3;  // 2.0 (id 2), 2.0 (id 4), 1.5 (id 0)
  expect_draws_from(p, restrict_to(softmax(scaled(kLogits, 0.7)), {0, 2, 4}));
  p.top_k = 2;
  expect_draws_from(p, restrict_to(softmax(scaled(kLogits, 0.7)), {2, 4}));
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  auto probs = softmax(scaled(kLogits, 1.0));
  std::vector<int> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  for (double top_p : {0.3, 0.5, 0.8, 0.95}) {
    std::vector<int> keep;
    double cum = 0;
    for (int id : order) {
      keep.push_back(id);
      cum += probs[id];
      if (cum >= top_p) break;
    }
    SamplingParams p;
    p.top_p = top_p;
    SCOPED_TRACE(top_p);
    expect_draws_from(p, restrict_to(probs, keep));
  }
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  auto probs = softmax(scaled(kLogits, 1.0));
  const double pmax = *std::max_element(probs.begin(), probs.end());
  for (double min_p : {0.1, 0.3, 0.7}) {
    std::vector<int> keep;
    for (int id = 0; id < static_cast<int>(probs.size()); ++id) {
      if (probs[id] >= min_p * pmax) keep.push_back(id);
    }
    SamplingParams p;
    p.min_p = min_p;
    SCOPED_TRACE(min_p);
    expect_draws_from(p, restrict_to(probs, keep));
  }
}

TEST(Sampler, TypicalPKeepsTokensClosestToTheEntropy) {
  auto probs = softmax(scaled(kLogits, 1.0));
  double entropy = 0;
  for (double q : probs) entropy -= q * std::log(q);
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return std::abs(-std::log(probs[a]) - entropy) < std::abs(-std::log(probs[b]) - entropy);
  });
  for (double mass : {0.2, 0.5, 0.9}) {
    std::vector<int> keep;
    double cum = 0;
    for (int id : order) {
      keep.push_back(id);
      cum += probs[id];
      if (cum >= mass) break;
    }
    SamplingParams p;
    p.typical_p = mass;
    SCOPED_TRACE(mass);
    expect_draws_from(p, restrict_to(probs, keep));
  }
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p;
  p.repetition_penalty = 2.0;
  std::vector<int32_t> prompt = {2, 1};
  std::vector<int32_t> output = {2, 6};
  std::vector<double> x(kLogits.begin(), kLogits.end());
  x[2] /= 2.0;  // counted once however often it appears
  x[1] *= 2.0;
  x[6] /= 2.0;
  expect_draws_from(p, softmax(x), kLogits, prompt, output);
  p.temperature = 0;
  EXPECT_EQ(sample(p, 0, kLogits, prompt, output), 4);  // id 2 is penalized below id 4
}

TEST(Sampler, PresenceAndFrequencyPenaltiesUseOutputCounts) {
  SamplingParams p;
  p.presence_penalty = 0.5;
  p.frequency_penalty = 0.25;
  std::vector<int32_t> prompt = {0, 0, 0};  // prompt tokens are not penalized
  std::vector<int32_t> output = {4, 4, 4, 3};
  std::vector<double> x(kLogits.begin(), kLogits.end());
  x[4] -= 0.5 + 3 * 0.25;
  x[3] -= 0.5 + 0.25;
  expect_draws_from(p, softmax(x), kLogits, prompt, output);
}

TEST(Sampler, LogitBiasIsAdded) {
  SamplingParams p;
  p.logit_bias = {{5, 4.0f}, {2, -1.0f}};
  std::vector<double> x(kLogits.begin(), kLogits.end());
  x[5] += 4.0;
  x[2] -= 1.0;
  expect_draws_from(p, softmax(x));
  p.temperature = 0;
  p.logit_bias = {{7, 100.0f}};
  EXPECT_EQ(sample(p, 0), 7);
}

TEST(Sampler, SuppressedTokensAreNeverDrawn) {
  SamplingParams p;
  p.temperature = 5.0;
  for (uint64_t seed = 0; seed < 500; ++seed) {
    int32_t t = sample(p, seed, kLogits, {}, {}, {2, 4, 0});
    ASSERT_TRUE(t != 2 && t != 4 && t != 0);
  }
  p.temperature = 0;
  EXPECT_EQ(sample(p, 0, kLogits, {}, {}, {2, 4}), 0);
}

TEST(Sampler, CombinedFiltersApplyInDocumentedOrder) {
  // top_k first (4 of 8), then top_p on the renormalized top 4, then min_p.
  SamplingParams p;
  p.temperature = 0.5;
  p.top_k = 4;
  p.top_p = 0.9;
  p.min_p = 0.2;
  auto probs = restrict_to(softmax(scaled(kLogits, 0.5)), {0, 2, 4, 6});
  std::vector<int> order = {2, 4, 0, 6};
  std::vector<int> keep;
  double cum = 0;
  for (int id : order) {
    keep.push_back(id);
    cum += probs[id];
    if (cum >= 0.9) break;
  }
  probs = restrict_to(probs, keep);
  const double pmax = *std::max_element(probs.begin(), probs.end());
  std::vector<int> keep2;
  for (int id : keep) {
    if (probs[id] >= 0.2 * pmax) keep2.push_back(id);
  }
  expect_draws_from(p, restrict_to(probs, keep2));
}

TEST(Sampler, CounterIsTheNumberOfGeneratedTokens) {
  SamplingParams p;
  auto probs = softmax(scaled(kLogits, 1.0));
  for (int len = 0; len < 50; ++len) {
    std::vector<int32_t> output(len, 1);
    ASSERT_EQ(sample(p, 77, kLogits, {}, output), draw(probs, 77, len));
  }
}

TEST(Sampler, LogprobsComeFromTheRawDistribution) {
  SamplingParams p;
  p.temperature = 0.3;
  p.repetition_penalty = 1.5;
  p.logit_bias = {{5, 3.0f}};
  p.logprobs = true;
  p.top_logprobs = 3;
  Sampler sampler;
  SampleInput in;
  in.logits = kLogits;
  in.params = &p;
  std::vector<int32_t> prompt = {2};
  in.prompt_tokens = prompt;
  in.seed = 5;
  SampleResult r = sampler.sample(in);
  auto raw = softmax(std::vector<double>(kLogits.begin(), kLogits.end()));
  EXPECT_EQ(r.logprob.token, r.token);
  EXPECT_NEAR(r.logprob.logprob, std::log(raw[r.token]), 1e-5);
  ASSERT_EQ(r.logprob.top.size(), 3u);
  EXPECT_EQ(r.logprob.top[0].first, 2);  // tie with 4 at the top: lower id first
  EXPECT_EQ(r.logprob.top[1].first, 4);
  EXPECT_EQ(r.logprob.top[2].first, 0);
  EXPECT_NEAR(r.logprob.top[2].second, std::log(raw[0]), 1e-5);
}

// Above 64 candidates the sampler selects the nucleus without sorting the
// whole vocabulary; the result must equal the full-sort definition.
TEST(Sampler, NucleusSelectionOnLargeVocabularyMatchesFullSort) {
  for (double spread : {2.0, 12.0}) {  // flat and peaked distributions
    std::vector<float> logits(3000);
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(sampler_uniform(9, i) * spread);
    for (int i = 0; i < 40; ++i) logits[100 + i] = logits[7];  // many ties
    auto probs = softmax(std::vector<double>(logits.begin(), logits.end()));
    std::vector<int> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    for (double top_p : {0.1, 0.5, 0.9, 0.99}) {
      std::vector<int> keep;
      double cum = 0;
      for (int id : order) {
        keep.push_back(id);
        cum += probs[id];
        if (cum >= top_p) break;
      }
      SamplingParams p;
      p.top_p = top_p;
      SCOPED_TRACE(std::to_string(spread) + " " + std::to_string(top_p));
      auto expected = restrict_to(probs, keep);
      for (uint64_t seed = 0; seed < 100; ++seed) {
        ASSERT_EQ(sample(p, seed, logits), draw(expected, seed, 0)) << "seed " << seed;
      }
    }
    double entropy = 0;
    for (double q : probs) entropy -= q * std::log(q);
    std::vector<int> typical_order(logits.size());
    std::iota(typical_order.begin(), typical_order.end(), 0);
    std::stable_sort(typical_order.begin(), typical_order.end(), [&](int a, int b) {
      double da = std::abs(-std::log(probs[a]) - entropy), db = std::abs(-std::log(probs[b]) - entropy);
      if (da != db) return da < db;
      return probs[a] > probs[b];
    });
    for (double mass : {0.3, 0.9}) {
      std::vector<int> keep;
      double cum = 0;
      for (int id : typical_order) {
        keep.push_back(id);
        cum += probs[id];
        if (cum >= mass) break;
      }
      SamplingParams p;
      p.typical_p = mass;
      SCOPED_TRACE("typical " + std::to_string(spread) + " " + std::to_string(mass));
      auto expected = restrict_to(probs, keep);
      for (uint64_t seed = 0; seed < 100; ++seed) {
        ASSERT_EQ(sample(p, seed, logits), draw(expected, seed, 0)) << "seed " << seed;
      }
    }
  }
}

TEST(Sampler, SameInputsSameTokenAcrossInstances) {
  SamplingParams p;
  p.temperature = 1.3;
  p.top_p = 0.9;
  Sampler a, b;
  std::vector<float> big(5000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(sampler_uniform(1, i) * 8);
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SampleInput in;
    in.logits = big;
    in.params = &p;
    in.seed = seed;
    int32_t first = a.sample(in).token;
    b.sample(in);  // scratch reuse must not matter
    ASSERT_EQ(first, b.sample(in).token);
  }
}

}  // namespace
}  // namespace nibble
