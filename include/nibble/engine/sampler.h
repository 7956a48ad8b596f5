#pragma once
// Turns one row of raw model logits into the next token of one sample. The
// CPU path calls this directly; the CUDA backend mirrors the same order of
// operations so that both agree on what a request's parameters mean.
//
// Order of operations (x = the row of fp32 logits, vocab_size entries):
//  1. Logprobs (when asked) come from the model's *raw* distribution:
//     log_softmax(x) before any of the steps below, as vLLM's default
//     ("raw_logprobs"). top alternatives: the top_logprobs largest raw
//     logprobs, most likely first, ties broken by the lower token id.
//  2. logit_bias: x[id] += bias (OpenAI).
//  3. Suppressed ids (EOS / stop_token_ids while fewer than min_tokens tokens
//     were generated): x[id] = -inf.
//  4. repetition_penalty p (Hugging Face): for every distinct id in
//     prompt + output, x[id] = x[id] > 0 ? x[id] / p : x[id] * p.
//  5. frequency f and presence r penalties (OpenAI), over output ids only:
//     x[id] -= f * count(id) + r * (count(id) > 0).
//  6. temperature == 0: greedy, the argmax of x (the lowest id on ties); stop.
//  7. x /= temperature.
//  8. Candidates: ids with finite x in descending order of x (ties: lower id
//     first). top_k > 0: keep the first top_k.
//  9. Probabilities: softmax over the kept candidates (in double).
//     top_p < 1: keep the shortest prefix whose cumulative probability is
//     >= top_p (at least one), renormalize.
// 10. min_p > 0: keep candidates with p >= min_p * p_max, renormalize.
// 11. typical_p < 1 (Hugging Face): H = -sum p log p; order the kept
//     candidates by |-log p - H| ascending (ties: more probable first); keep
//     the shortest prefix with cumulative probability >= typical_p (at least
//     one), renormalize.
// 12. Draw: u = sampler_uniform(seed, counter) in [0, 1) where counter is the
//     number of tokens this sample generated before (0 for the first). Walk
//     the kept ids in ascending id order accumulating p; the token is the
//     first whose running sum exceeds u * (sum of kept p); the last kept id if
//     rounding leaves none.
// The draw depends only on (seed, counter) and the logits, so a seeded request
// produces the same tokens whatever else is in the batch, and after a
// preemption recomputes it.
#include <cstdint>
#include <span>
#include <vector>

#include "nibble/scheduler/request.h"

namespace nibble {

// splitmix64 finalizer (Steele et al.), the mixing function of the RNG.
uint64_t splitmix64(uint64_t x);

// Counter-based uniform double in [0, 1):
//   bits = splitmix64(splitmix64(seed) ^ (counter * 0xD1B54A32D192ED03 + 0x9E3779B97F4A7C15))
//   u = (bits >> 11) * 2^-53
double sampler_uniform(uint64_t seed, uint64_t counter);

struct SampleInput {
  std::span<const float> logits;  // raw logits, vocab_size entries
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt_tokens;
  std::span<const int32_t> output_tokens;      // generated so far by this sample
  std::span<const int32_t> suppressed_tokens;  // masked to -inf (min_tokens)
  uint64_t seed = 0;                           // this sample's seed
};

struct SampleResult {
  int32_t token = 0;
  TokenLogprob logprob;  // filled when params->logprobs
};

// Holds scratch buffers so sampling a token does not allocate in steady state.
// Not thread-safe: one per thread.
class Sampler {
 public:
  SampleResult sample(const SampleInput& input);

 private:
  struct Candidate {
    int32_t id;
    double value;  // logit, later probability
    double key;    // typical_p: distance of the surprise from the entropy
  };
  void apply_penalties(const SampleInput& input);
  void fill_logprobs(const SampleInput& input, SampleResult& result);
  int32_t draw(const SampleInput& input);
  int32_t draw_unfiltered(double temperature, double u);

  std::vector<float> x_;
  std::vector<int32_t> counts_;     // output-token counts, dense over the vocab
  std::vector<uint8_t> seen_;       // prompt+output membership for repetition_penalty
  std::vector<int32_t> touched_;    // ids whose counts_/seen_ entries must be reset
  std::vector<Candidate> cand_;
  std::vector<Candidate> scratch_;
  std::vector<double> dense_;
};

}  // namespace nibble
