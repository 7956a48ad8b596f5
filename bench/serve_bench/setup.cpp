#include "setup.h"

#include "nibble/core/error.h"

namespace nibble::serve_bench {

namespace {
constexpr int kCalibrationWords = 1024;
// Typical BPE ratio for English words, used only without /tokenize.
constexpr double kAssumedTokensPerWord = 1.3;
}  // namespace

std::string resolve_model(StreamClient& client, const Options& options) {
  if (!options.model.empty()) return options.model;
  std::string error;
  auto models = client.get_json("/v1/models", error);
  if (!models) throw Error("cannot list models (pass --model): " + error);
  const auto data = models->find("data");
  if (data == models->end() || !data->is_array() || data->empty() || !(*data)[0].is_object() ||
      !(*data)[0].contains("id") || !(*data)[0]["id"].is_string())
    throw Error("GET /v1/models: no model id in " + models->dump().substr(0, 300));
  return (*data)[0]["id"].get<std::string>();
}

PromptSource make_prompt_source(StreamClient& client, const Options& options, std::string& mode) {
  PromptSource source;
  const std::string text = Workload::random_words(options.seed ^ 0x5eedULL, kCalibrationWords);
  nlohmann::json request = {{"prompt", text}, {"add_special_tokens", false}};
  if (!options.model.empty()) request["model"] = options.model;
  std::string error;
  auto answer = client.post_json("/tokenize", request, error);
  const nlohmann::json* tokens = nullptr;
  if (answer && answer->is_object() && answer->contains("tokens") && (*answer)["tokens"].is_array())
    tokens = &(*answer)["tokens"];
  if (tokens == nullptr || tokens->empty()) {
    source.tokens_per_word = kAssumedTokensPerWord;
    mode = "words at an assumed " + std::to_string(kAssumedTokensPerWord) +
           " tokens/word (POST /tokenize unavailable" + (error.empty() ? "" : ": " + error) + ")";
    return source;
  }
  for (const auto& id : *tokens)
    if (id.is_number_integer()) source.token_pool.push_back(id.get<std::int64_t>());
  source.tokens_per_word = static_cast<double>(source.token_pool.size()) / kCalibrationWords;
  if (options.endpoint == Endpoint::completions) {
    mode = "token ids drawn from the server's tokenization of filler text (exact lengths)";
  } else {
    mode = "words at a measured " + std::to_string(source.tokens_per_word) +
           " tokens/word plus the chat template";
  }
  return source;
}

}  // namespace nibble::serve_bench
