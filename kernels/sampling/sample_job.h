#pragma once
// The plain data the GPU sampler reads and writes (sampling.h), free of CUDA
// headers so the host builder (sample_jobs_host.h) builds without CUDA.
#include <cstdint>

namespace nibble::kernels {

constexpr int kMaxSampleTopLogprobs = 20;

// One sample to draw. Plain data, built on the host (sample_jobs_host.h).
struct SampleJob {
  int32_t logits_row = 0;
  int32_t entry_begin = 0;  // this sample's SampleEntry range (sorted by id)
  int32_t entry_count = 0;
  float repetition_penalty = 1.0f;
  double temperature = 1.0;  // <= 0: greedy
  int32_t top_k = 0;         // <= 0: disabled
  int32_t top_logprobs = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double typical_p = 1.0;
  uint64_t seed = 0;
  uint64_t counter = 0;  // tokens this sample generated before
  int32_t logprobs = 0;  // 1: fill SampleOutput::logprob and the top alternatives
  int32_t pad = 0;
};

// What happens to one token id of one sample before the filters, in this order.
enum SampleEntryFlags : uint32_t {
  kEntryBias = 1,      // x += bias
  kEntrySuppress = 2,  // x = -inf
  kEntryRepeat = 4,    // x = x > 0 ? x / repetition_penalty : x * repetition_penalty
  kEntryCounted = 8,   // x -= subtract (frequency * count + presence, rounded to float)
};

struct SampleEntry {
  int32_t id = 0;
  uint32_t flags = 0;
  float bias = 0.0f;
  float subtract = 0.0f;
};

struct SampleOutput {
  int32_t token = 0;
  float logprob = 0.0f;  // raw log_softmax of token
  int32_t num_top = 0;
  int32_t top_ids[kMaxSampleTopLogprobs];
  float top_logprobs[kMaxSampleTopLogprobs];
};

}  // namespace nibble::kernels
