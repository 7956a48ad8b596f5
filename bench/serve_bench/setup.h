#pragma once
// What the benchmark learns from the server before the timed levels: the
// model id and how to build prompts of a given token length.
#include <string>

#include "options.h"
#include "stream_client.h"
#include "workload.h"

namespace nibble::serve_bench {

// The --model option, else the first id GET /v1/models lists. Throws nibble::Error.
std::string resolve_model(StreamClient& client, const Options& options);

// Tokenizes seeded filler text with POST /tokenize (vLLM-compatible) to get
// a pool of real token ids and the tokens-per-word ratio; falls back to
// words at an assumed ratio when the server has no /tokenize. `mode`
// describes the choice for the report.
PromptSource make_prompt_source(StreamClient& client, const Options& options, std::string& mode);

}  // namespace nibble::serve_bench
