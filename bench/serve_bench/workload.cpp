#include "workload.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

namespace nibble::serve_bench {

namespace {
// splitmix64: a well-mixed 64-bit hash for combining seed and indices.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::array<const char*, 64> kWords = {
    "time",   "river",  "stone",  "light",   "north",   "garden", "paper",  "silver",
    "window", "market", "engine", "quiet",   "yellow",  "bridge", "winter", "number",
    "forest", "letter", "simple", "machine", "village", "ocean",  "doctor", "history",
    "music",  "planet", "energy", "morning", "station", "castle", "friend", "mirror",
    "open",   "carry",  "build",  "follow",  "measure", "listen", "travel", "answer",
    "small",  "bright", "heavy",  "careful", "ancient", "narrow", "golden", "second",
    "under",  "across", "before", "between", "without", "always", "rarely", "together",
    "cloud",  "signal", "harbor", "lantern", "meadow",  "orchard", "pencil", "thunder"};
}  // namespace

Workload::Workload(const Options& options, PromptSource source)
    : options_(options), source_(std::move(source)) {}

std::string Workload::random_words(std::uint64_t seed, int count) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, kWords.size() - 1);
  std::string text;
  for (int i = 0; i < count; ++i) {
    if (i > 0) text.push_back(' ');
    text += kWords[pick(rng)];
  }
  return text;
}

RequestSpec Workload::spec(int level, int client, int index) const {
  std::uint64_t h = mix(options_.seed);
  h = mix(h ^ static_cast<std::uint64_t>(level));
  h = mix(h ^ static_cast<std::uint64_t>(client));
  h = mix(h ^ static_cast<std::uint64_t>(index));
  RequestSpec spec;
  spec.prompt_tokens = options_.prompt_tokens[h % options_.prompt_tokens.size()];
  spec.max_tokens = options_.max_tokens;
  spec.prompt_seed = mix(h);
  return spec;
}

nlohmann::json Workload::body(const RequestSpec& spec) const {
  nlohmann::json body = {
      {"max_tokens", spec.max_tokens},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"ignore_eos", true},
      {"temperature", options_.temperature},
  };
  if (!options_.model.empty()) body["model"] = options_.model;

  if (options_.endpoint == Endpoint::completions && !source_.token_pool.empty()) {
    std::mt19937_64 rng(spec.prompt_seed);
    std::uniform_int_distribution<std::size_t> pick(0, source_.token_pool.size() - 1);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(spec.prompt_tokens));
    for (auto& id : ids) id = source_.token_pool[pick(rng)];
    body["prompt"] = std::move(ids);
    return body;
  }
  const int words = std::max(
      1, static_cast<int>(std::lround(spec.prompt_tokens / std::max(source_.tokens_per_word, 0.05))));
  std::string text = random_words(spec.prompt_seed, words);
  if (options_.endpoint == Endpoint::chat)
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", std::move(text)}}});
  else
    body["prompt"] = std::move(text);
  return body;
}

}  // namespace nibble::serve_bench
