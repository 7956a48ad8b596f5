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

// Moves the shortest prefix (in the strict order cmp) whose probabilities sum
// to >= mass to the front of cand, in some order, and returns its length (all
// when they never do). Quickselect-style: each round partitions the open
// range around a pivot and keeps the side where the boundary lies, so the
// cost is expected linear, not a full sort of the vocabulary.
template <typename C, typename Cmp>
size_t select_prefix_reaching(std::vector<C>& cand, double mass, Cmp cmp) {
  size_t lo = 0, hi = cand.size();  // [0, lo) is inside the prefix; its mass is acc
  double acc = 0.0;
  while (hi - lo > 64) {
    const C pivot = cand[lo + (hi - lo) / 2];
    auto first = cand.begin();
    const size_t m = static_cast<size_t>(
        std::partition(first + lo, first + hi, [&](const C& c) { return cmp(c, pivot); }) - first);
    // cmp is a strict total order (ties broken by id), so the pivot is alone: put it at m.
    auto at = std::find_if(first + m, first + hi, [&](const C& c) { return c.id == pivot.id; });
    std::iter_swap(first + m, at);
    double upper = 0.0;
    for (size_t i = lo; i <= m; ++i) upper += cand[i].value;
    if (acc + upper >= mass) {
      if (m + 1 == hi) break;  // no progress this round; finish by sorting
      hi = m + 1;
    } else {
      acc += upper;
      lo = m + 1;
    }
  }
  std::sort(cand.begin() + lo, cand.begin() + hi, cmp);
  for (size_t i = lo; i < hi; ++i) {
    acc += cand[i].value;
    if (acc >= mass) return i + 1;
  }
  return hi;
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
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float v : logits) max_logit = std::max(max_logit, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(v - max_logit);
  const double log_z = max_logit + std::log(sum);
  result.logprob.token = result.token;
  result.logprob.logprob = static_cast<float>(logits[result.token] - log_z);
  result.logprob.top.clear();
  const size_t n = static_cast<size_t>(std::min<int>(in.params->top_logprobs, static_cast<int>(logits.size())));
  if (n == 0) return;
  // The n best by (logit desc, id asc) in one pass: a heap whose top is the worst kept.
  auto better = [](const Candidate& a, const Candidate& b) { return before(a.value, a.id, b.value, b.id); };
  scratch_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    Candidate c{static_cast<int32_t>(i), logits[i], 0.0};
    if (scratch_.size() < n) {
      scratch_.push_back(c);
      std::push_heap(scratch_.begin(), scratch_.end(), better);
    } else if (better(c, scratch_.front())) {
      std::pop_heap(scratch_.begin(), scratch_.end(), better);
      scratch_.back() = c;
      std::push_heap(scratch_.begin(), scratch_.end(), better);
    }
  }
  std::sort_heap(scratch_.begin(), scratch_.end(), better);
  for (const Candidate& c : scratch_) {
    result.logprob.top.emplace_back(c.id, static_cast<float>(c.value - log_z));
  }
}

int32_t Sampler::draw(const SampleInput& in) {
  const SamplingParams& p = *in.params;
  const double temperature = p.temperature;
  auto by_value = [](const Candidate& a, const Candidate& b) { return before(a.value, a.id, b.value, b.id); };

  const double u = sampler_uniform(in.seed, in.output_tokens.size());
  const bool filtered = (p.top_k > 0 && static_cast<size_t>(p.top_k) < x_.size()) || p.top_p < 1.0 || p.min_p > 0.0 ||
                        p.typical_p < 1.0;
  if (!filtered) return draw_unfiltered(temperature, u);

  cand_.clear();
  for (size_t i = 0; i < x_.size(); ++i) {
    if (std::isfinite(x_[i])) cand_.push_back({static_cast<int32_t>(i), x_[i] / temperature, 0.0});
  }
  if (cand_.empty()) return argmax_lowest_id(x_);

  // cand_ stays in id order until a rank-based filter reorders it.
  bool id_order = true;
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < cand_.size()) {
    std::partial_sort(cand_.begin(), cand_.begin() + p.top_k, cand_.end(), by_value);
    cand_.resize(p.top_k);
    id_order = false;
  }

  double max_value = -std::numeric_limits<double>::infinity();
  for (const auto& c : cand_) max_value = std::max(max_value, c.value);
  double sum = 0.0;
  for (auto& c : cand_) {
    c.value = std::exp(static_cast<float>(c.value - max_value));  // float exp: 4x cheaper, ample precision
    sum += c.value;
  }
  for (auto& c : cand_) c.value /= sum;

  if (p.top_p < 1.0) {
    keep_prefix(cand_, id_order ? select_prefix_reaching(cand_, p.top_p, by_value)
                                : shortest_prefix_reaching(cand_, p.top_p));
    id_order = false;
  }
  if (p.min_p > 0.0) {
    double p_max = 0.0;
    for (const auto& c : cand_) p_max = std::max(p_max, c.value);
    const double threshold = p.min_p * p_max;
    auto end = std::stable_partition(cand_.begin(), cand_.end(), [&](const Candidate& c) { return c.value >= threshold; });
    keep_prefix(cand_, static_cast<size_t>(end - cand_.begin()));
  }
  if (p.typical_p < 1.0) {
    double entropy = 0.0;
    for (const auto& c : cand_) {
      if (c.value > 0.0) entropy -= c.value * std::log(c.value);
    }
    for (auto& c : cand_) {
      const double surprise = c.value > 0.0 ? -std::log(c.value) : std::numeric_limits<double>::infinity();
      c.key = std::abs(surprise - entropy);
    }
    auto by_typicality = [](const Candidate& a, const Candidate& b) {
      if (a.key != b.key) return a.key < b.key;
      return before(a.value, a.id, b.value, b.id);
    };
    keep_prefix(cand_, select_prefix_reaching(cand_, p.typical_p, by_typicality));
    id_order = false;
  }

  if (!id_order) {
    if (cand_.size() > 4096) {
      // A large kept set: scatter into a dense row instead of sorting by id.
      dense_.assign(x_.size(), 0.0);
      for (const auto& c : cand_) dense_[c.id] = c.value;
      cand_.clear();
      for (size_t i = 0; i < dense_.size(); ++i) {
        if (dense_[i] > 0.0) cand_.push_back({static_cast<int32_t>(i), dense_[i], 0.0});
      }
    } else {
      std::sort(cand_.begin(), cand_.end(), [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
    }
  }
  double total = 0.0;
  for (const auto& c : cand_) total += c.value;
  const double target = u * total;
  double running = 0.0;
  for (const auto& c : cand_) {
    running += c.value;
    if (running > target) return c.id;
  }
  return cand_.back().id;
}

int32_t Sampler::draw_unfiltered(double temperature, double u) {
  // Steps 9 and 12 only, straight over the row: no candidate list.
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float v : x_) max_logit = std::max(max_logit, v);
  if (!std::isfinite(max_logit)) return argmax_lowest_id(x_);
  const float inv_t = static_cast<float>(1.0 / temperature);
  double total = 0.0;
  for (float& v : x_) {
    v = std::isfinite(v) ? std::exp((v - max_logit) * inv_t) : 0.0f;
    total += v;
  }
  const double target = u * total;
  double running = 0.0;
  int32_t last = 0;
  for (size_t i = 0; i < x_.size(); ++i) {
    if (x_[i] <= 0.0f) continue;
    running += x_[i];
    last = static_cast<int32_t>(i);
    if (running > target) return last;
  }
  return last;
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
