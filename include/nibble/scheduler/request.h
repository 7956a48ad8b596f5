#pragma once
// What a generation request asks of the engine, and what comes back. Token ids
// only: text (stop strings, detokenization) is handled above the scheduler.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace nibble {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  int top_k = 0;             // 0 or -1 = disabled
  double top_p = 1.0;
  double min_p = 0.0;
  double typical_p = 1.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  std::unordered_map<int32_t, float> logit_bias;
  std::optional<uint64_t> seed;  // same seed -> same tokens, whatever else is batched
  // Logprobs: when logprobs is true each sampled token comes with its logprob
  // and the top_logprobs most likely alternatives (0..20).
  bool logprobs = false;
  int top_logprobs = 0;
};

struct StopParams {
  int max_tokens = 16;
  int min_tokens = 0;  // EOS and stop_token_ids are ignored before this many tokens
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;  // besides the model's EOS ids
};

struct GenerationRequest {
  std::string id;
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  StopParams stop;
  int n = 1;  // parallel samples sharing the prompt's KV blocks; outputs carry index
};

enum class FinishReason { Stop, Length, Abort, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

// One delivery on a request's output channel.
struct RequestOutput {
  int index = 0;                       // which of the n samples
  std::vector<int32_t> new_tokens;     // tokens generated since the last delivery
  std::vector<TokenLogprob> logprobs;  // parallel to new_tokens when asked
  std::optional<FinishReason> finish;  // set on the sample's last delivery
  bool finished_by_stop_token = false; // the last token is an EOS / stop token id
  std::string error;                   // when finish == Error
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;        // prompt tokens served from the prefix cache
};

}  // namespace nibble
