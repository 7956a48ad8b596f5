#include "sampling/sample_jobs_host.h"

#include <algorithm>

#include "nibble/core/error.h"

namespace nibble::kernels {

SampleJobBuilder::SampleJobBuilder(int vocab_size) : vocab_(vocab_size) {
  NIBBLE_CHECK(vocab_size > 0, "sample jobs: vocab_size must be positive, got " + std::to_string(vocab_size));
  slot_.assign(static_cast<size_t>(vocab_size), -1);
}

void SampleJobBuilder::clear() {
  jobs_.clear();
  entries_.clear();
}

SampleEntry& SampleJobBuilder::entry(int32_t id) {
  int32_t& slot = slot_[static_cast<size_t>(id)];
  if (slot < 0) {
    slot = static_cast<int32_t>(entries_.size());
    entries_.push_back(SampleEntry{id, 0u, 0.0f, 0.0f});
    counts_.push_back(0);
  }
  return entries_[static_cast<size_t>(slot)];
}

bool SampleJobBuilder::add(int logits_row, const SampleInput& in, size_t max_entries) {
  NIBBLE_CHECK(in.params != nullptr, "sample jobs: no sampling parameters");
  const SamplingParams& p = *in.params;
  if (p.logprobs && p.top_logprobs > kMaxSampleTopLogprobs) return false;
  const size_t begin = entries_.size();
  counts_.clear();
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < vocab_; };

  for (const auto& [id, bias] : p.logit_bias) {
    if (!in_vocab(id)) continue;
    SampleEntry& e = entry(id);
    e.flags |= kEntryBias;
    e.bias = bias;
  }
  for (int32_t id : in.suppressed_tokens)
    if (in_vocab(id)) entry(id).flags |= kEntrySuppress;
  const bool repetition = p.repetition_penalty != 1.0;
  const bool additive = p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
  if (repetition) {
    for (int32_t id : in.prompt_tokens)
      if (in_vocab(id)) entry(id).flags |= kEntryRepeat;
  }
  if (repetition || additive) {
    for (int32_t id : in.output_tokens) {
      if (!in_vocab(id)) continue;
      SampleEntry& e = entry(id);
      if (repetition) e.flags |= kEntryRepeat;
      ++counts_[static_cast<size_t>(slot_[static_cast<size_t>(id)]) - begin];
    }
  }
  for (size_t k = begin; k < entries_.size(); ++k) {
    SampleEntry& e = entries_[k];
    slot_[static_cast<size_t>(e.id)] = -1;
    const int32_t count = counts_[k - begin];
    if (count > 0) {
      // The CPU subtracts static_cast<float>(f * count + r) (sampler.cpp).
      e.flags |= kEntryCounted;
      e.subtract = static_cast<float>(p.frequency_penalty * count + p.presence_penalty);
    }
  }
  if (entries_.size() > max_entries) {
    entries_.resize(begin);
    return false;
  }
  std::sort(entries_.begin() + static_cast<std::ptrdiff_t>(begin), entries_.end(),
            [](const SampleEntry& a, const SampleEntry& b) { return a.id < b.id; });

  SampleJob job;
  job.logits_row = logits_row;
  job.entry_begin = static_cast<int32_t>(begin);
  job.entry_count = static_cast<int32_t>(entries_.size() - begin);
  job.repetition_penalty = static_cast<float>(p.repetition_penalty);
  job.temperature = p.temperature;
  job.top_k = p.top_k;
  job.top_p = p.top_p;
  job.min_p = p.min_p;
  job.typical_p = p.typical_p;
  job.seed = in.seed;
  job.counter = in.output_tokens.size();
  job.logprobs = p.logprobs ? 1 : 0;
  job.top_logprobs = p.logprobs ? std::min(p.top_logprobs, vocab_) : 0;
  jobs_.push_back(job);
  return true;
}

SampleResult to_sample_result(const SampleOutput& out, bool logprobs) {
  SampleResult r;
  r.token = out.token;
  if (!logprobs) return r;
  r.logprob.token = out.token;
  r.logprob.logprob = out.logprob;
  const int n = std::clamp(out.num_top, 0, kMaxSampleTopLogprobs);
  r.logprob.top.reserve(static_cast<size_t>(n));
  for (int k = 0; k < n; ++k) r.logprob.top.emplace_back(out.top_ids[k], out.top_logprobs[k]);
  return r;
}

}  // namespace nibble::kernels
