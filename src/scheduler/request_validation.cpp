#include "nibble/scheduler/request_validation.h"

#include <cmath>

#include <fmt/format.h>

namespace nibble {

namespace {

ValidationResult invalid(std::string message) { return {SubmitStatus::Invalid, std::move(message)}; }

bool in_vocab(int32_t id, int vocab) { return id >= 0 && id < vocab; }

ValidationResult validate_sampling(const SamplingParams& s, int vocab) {
  if (!std::isfinite(s.temperature) || s.temperature < 0.0)
    return invalid(fmt::format("temperature must be >= 0, got {}", s.temperature));
  if (s.top_k < -1) return invalid(fmt::format("top_k must be -1, 0 or positive, got {}", s.top_k));
  if (!(s.top_p > 0.0 && s.top_p <= 1.0)) return invalid(fmt::format("top_p must be in (0, 1], got {}", s.top_p));
  if (!(s.min_p >= 0.0 && s.min_p <= 1.0)) return invalid(fmt::format("min_p must be in [0, 1], got {}", s.min_p));
  if (!(s.typical_p > 0.0 && s.typical_p <= 1.0))
    return invalid(fmt::format("typical_p must be in (0, 1], got {}", s.typical_p));
  if (!(std::isfinite(s.repetition_penalty) && s.repetition_penalty > 0.0))
    return invalid(fmt::format("repetition_penalty must be > 0, got {}", s.repetition_penalty));
  if (!std::isfinite(s.presence_penalty))
    return invalid(fmt::format("presence_penalty must be finite, got {}", s.presence_penalty));
  if (!std::isfinite(s.frequency_penalty))
    return invalid(fmt::format("frequency_penalty must be finite, got {}", s.frequency_penalty));
  if (s.top_logprobs < 0 || s.top_logprobs > 20)
    return invalid(fmt::format("top_logprobs must be in [0, 20], got {}", s.top_logprobs));
  for (const auto& [id, bias] : s.logit_bias) {
    if (!in_vocab(id, vocab)) return invalid(fmt::format("logit_bias token {} is outside the vocabulary (size {})", id, vocab));
    if (!std::isfinite(bias)) return invalid(fmt::format("logit_bias for token {} must be finite", id));
  }
  return {};
}

}  // namespace

ValidationResult validate_request(const GenerationRequest& r, const RequestLimits& limits) {
  if (r.prompt.empty()) return invalid("the prompt is empty: at least one token is needed");
  for (size_t i = 0; i < r.prompt.size(); ++i) {
    if (!in_vocab(r.prompt[i], limits.vocab_size))
      return invalid(fmt::format("prompt token {} at position {} is outside the vocabulary (size {})", r.prompt[i], i,
                                 limits.vocab_size));
  }
  if (r.n < 1 || r.n > limits.max_num_seqs)
    return invalid(fmt::format("n must be in [1, {}], got {}", limits.max_num_seqs, r.n));
  if (r.stop.max_tokens < 1) return invalid(fmt::format("max_tokens must be at least 1, got {}", r.stop.max_tokens));
  if (r.stop.min_tokens < 0 || r.stop.min_tokens > r.stop.max_tokens)
    return invalid(fmt::format("min_tokens must be in [0, max_tokens={}], got {}", r.stop.max_tokens, r.stop.min_tokens));
  for (int32_t id : r.stop.stop_token_ids) {
    if (!in_vocab(id, limits.vocab_size))
      return invalid(fmt::format("stop_token_ids entry {} is outside the vocabulary (size {})", id, limits.vocab_size));
  }
  if (auto sampling = validate_sampling(r.sampling, limits.vocab_size); !sampling.ok()) return sampling;

  const long long prompt = static_cast<long long>(r.prompt.size());
  const long long total = prompt + r.stop.max_tokens;
  if (total > limits.max_model_len) {
    return {SubmitStatus::TooLong,
            fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens ({} in the "
                        "prompt, {} for the completion). Please reduce the prompt or max_tokens.",
                        limits.max_model_len, total, prompt, r.stop.max_tokens)};
  }
  const long long blocks = (total + limits.block_size - 1) / limits.block_size;
  if (blocks > limits.num_kv_blocks) {
    return {SubmitStatus::TooLong,
            fmt::format("The request needs {} tokens ({} in the prompt, {} for the completion) but the KV cache holds "
                        "only {} tokens ({} blocks of {}). Please reduce the prompt or max_tokens.",
                        total, prompt, r.stop.max_tokens,
                        static_cast<long long>(limits.num_kv_blocks) * limits.block_size, limits.num_kv_blocks,
                        limits.block_size)};
  }
  return {};
}

}  // namespace nibble
