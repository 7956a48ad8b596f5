#include "nibble/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "nibble/core/error.h"

namespace nibble {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

double sampler_uniform(uint64_t seed, uint64_t counter) {
  uint64_t bits = splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool before(double a_value, int32_t a_id, double b_value, int32_t b_id) {
  return a_value > b_value || (a_value == b_value && a_id < b_id);
}

int32_t argmax_lowest_id(const std::vector<float>& x) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(x.size()); ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// Renormalizes the probabilities of the first `keep` candidates and drops the rest.
template <typename C>
void keep_prefix(std::vector<C>& cand, size_t keep) {
  cand.resize(std::max<size_t>(keep, 1));
  double sum = 0.0;
  for (const auto& c : cand) sum += c.value;
  for (auto& c : cand) c.value /= sum;
}

template <typename C>
size_t shortest_prefix_reaching(const std::vector<C>& cand, double mass) {
  double cumulative = 0.0;
  for (size_t i = 0; i < cand.size(); ++i) {
    cumulative += cand[i].value;
    if (cumulative >= mass) return i + 1;
  }
  return cand.size();
}

}  // namespace

void Sampler::apply_penalties(const SampleInput& in) {
  const SamplingParams& p = *in.params;
  const int32_t vocab = static_cast<int32_t>(x_.size());
  for (const auto& [id, bias] : p.logit_bias) {
    if (id >= 0 && id < vocab) x_[id] += bias;
  }
  for (int32_t id : in.suppressed_tokens) {
    if (id >= 0 && id < vocab) x_[id] = kNegInf;
  }
  const bool repetition = p.repetition_penalty != 1.0;
  const bool additive = p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
  if (!repetition && !additive) return;

  counts_.resize(x_.size(), 0);
  seen_.resize(x_.size(), 0);
  touched_.clear();
  auto touch = [&](int32_t id) {
    if (!seen_[id]) {
      seen_[id] = 1;
      touched_.push_back(id);
    }
  };
  if (repetition) {
    for (int32_t id : in.prompt_tokens) {
      if (id >= 0 && id < vocab) touch(id);
    }
  }
  for (int32_t id : in.output_tokens) {
    if (id < 0 || id >= vocab) continue;
    touch(id);
    ++counts_[id];
  }
  const float rp = static_cast<float>(p.repetition_penalty);
  for (int32_t id : touched_) {
    float& v = x_[id];
    if (repetition) v = v > 0.0f ? v / rp : v * rp;
    if (counts_[id] > 0) {
      v -= static_cast<float>(p.frequency_penalty * counts_[id] + p.presence_penalty);
    }
    counts_[id] = 0;
    seen_[id] = 0;
  }
}

void Sampler::fill_logprobs(const SampleInput& in, SampleResult& result) {
  const auto& logits = in.logits;
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float v : logits) max_logit = std::max<double>(max_logit, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - max_logit);
  const double log_z = max_logit + std::log(sum);
  result.logprob.token = result.token;
  result.logprob.logprob = static_cast<float>(logits[result.token] - log_z);
  result.logprob.top.clear();
  const int n = std::min<int>(in.params->top_logprobs, static_cast<int>(logits.size()));
  if (n <= 0) return;
  scratch_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) scratch_[i] = {static_cast<int32_t>(i), logits[i]};
  auto cmp = [](const Candidate& a, const Candidate& b) { return before(a.value, a.id, b.value, b.id); };
  std::partial_sort(scratch_.begin(), scratch_.begin() + n, scratch_.end(), cmp);
  for (int i = 0; i < n; ++i) {
    result.logprob.top.emplace_back(scratch_[i].id, static_cast<float>(scratch_[i].value - log_z));
  }
}

int32_t Sampler::draw(const SampleInput& in) {
  const SamplingParams& p = *in.params;
  const double temperature = p.temperature;
  auto by_logit = [](const Candidate& a, const Candidate& b) { return before(a.value, a.id, b.value, b.id); };

  cand_.clear();
  for (size_t i = 0; i < x_.size(); ++i) {
    if (std::isfinite(x_[i])) cand_.push_back({static_cast<int32_t>(i), x_[i] / temperature});
  }
  if (cand_.empty()) return argmax_lowest_id(x_);

  // Steps 8-11 need the descending order only when a rank-based filter is on.
  const bool top_k = p.top_k > 0 && static_cast<size_t>(p.top_k) < cand_.size();
  const bool top_p = p.top_p < 1.0;
  const bool typical = p.typical_p < 1.0;
  bool sorted_desc = false;
  if (top_k) {
    std::partial_sort(cand_.begin(), cand_.begin() + p.top_k, cand_.end(), by_logit);
    cand_.resize(p.top_k);
    sorted_desc = true;
  } else if (top_p) {
    std::sort(cand_.begin(), cand_.end(), by_logit);
    sorted_desc = true;
  }

  double max_value = -std::numeric_limits<double>::infinity();
  for (const auto& c : cand_) max_value = std::max(max_value, c.value);
  double sum = 0.0;
  for (auto& c : cand_) {
    c.value = std::exp(c.value - max_value);
    sum += c.value;
  }
  for (auto& c : cand_) c.value /= sum;

  if (top_p) keep_prefix(cand_, shortest_prefix_reaching(cand_, p.top_p));
  if (p.min_p > 0.0) {
    double p_max = 0.0;
    for (const auto& c : cand_) p_max = std::max(p_max, c.value);
    const double threshold = p.min_p * p_max;
    auto end = std::stable_partition(cand_.begin(), cand_.end(), [&](const Candidate& c) { return c.value >= threshold; });
    keep_prefix(cand_, static_cast<size_t>(end - cand_.begin()));
  }
  if (typical) {
    double entropy = 0.0;
    for (const auto& c : cand_) {
      if (c.value > 0.0) entropy -= c.value * std::log(c.value);
    }
    scratch_.clear();
    for (const auto& c : cand_) {
      double surprise = c.value > 0.0 ? -std::log(c.value) : std::numeric_limits<double>::infinity();
      scratch_.push_back({c.id, std::abs(surprise - entropy)});
    }
    // Order by distance, carrying each candidate's probability along.
    std::vector<size_t>& order = order_scratch_;
    order.resize(cand_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (scratch_[a].value != scratch_[b].value) return scratch_[a].value < scratch_[b].value;
      return before(cand_[a].value, cand_[a].id, cand_[b].value, cand_[b].id);
    });
    reordered_.clear();
    for (size_t i : order) reordered_.push_back(cand_[i]);
    cand_.swap(reordered_);
    keep_prefix(cand_, shortest_prefix_reaching(cand_, p.typical_p));
    sorted_desc = true;
  }

  if (sorted_desc) {
    std::sort(cand_.begin(), cand_.end(), [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
  }
  double total = 0.0;
  for (const auto& c : cand_) total += c.value;
  const double target = sampler_uniform(in.seed, in.output_tokens.size()) * total;
  double running = 0.0;
  for (const auto& c : cand_) {
    running += c.value;
    if (running > target) return c.id;
  }
  return cand_.back().id;
}

SampleResult Sampler::sample(const SampleInput& in) {
  NIBBLE_CHECK(in.params != nullptr, "sampler: no sampling parameters");
  NIBBLE_CHECK(!in.logits.empty(), "sampler: empty logits row");
  x_.assign(in.logits.begin(), in.logits.end());
  apply_penalties(in);

  SampleResult result;
  if (in.params->temperature <= 0.0) {
    result.token = argmax_lowest_id(x_);
  } else {
    result.token = draw(in);
  }
  if (in.params->logprobs) fill_logprobs(in, result);
  return result;
}

}  // namespace nibble
