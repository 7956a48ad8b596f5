#pragma once
// The seeded request mix. Each request draws its prompt length from the
// --prompt-tokens set and gets its own prompt, so prompts never share a
// prefix (a prefix-cache hit would flatter the numbers). The same seed gives
// the same mix on every run and every server.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.h"

namespace nibble::serve_bench {

// How prompts are made: token ids drawn from a pool of the server's own
// tokens (exact lengths; needs POST /tokenize and the completions endpoint),
// or plain words scaled by a measured tokens-per-word ratio (approximate;
// the usage the server reports is what gets counted).
struct PromptSource {
  std::vector<std::int64_t> token_pool;  // empty: use words
  double tokens_per_word = 1.0;
};

struct RequestSpec {
  int prompt_tokens = 0;  // asked length
  int max_tokens = 0;
  std::uint64_t prompt_seed = 0;
};

class Workload {
 public:
  Workload(const Options& options, PromptSource source);

  // Request number `index` of client `client` at level `level`: a pure
  // function of the seed, so clients need no shared state.
  RequestSpec spec(int level, int client, int index) const;
  // The JSON body of a streaming request for that spec.
  nlohmann::json body(const RequestSpec& spec) const;

  static std::string random_words(std::uint64_t seed, int count);

 private:
  const Options& options_;
  PromptSource source_;
};

}  // namespace nibble::serve_bench
