#pragma once
// Runs one concurrency level: N client threads start together, each sends
// its requests back to back (a closed loop, as vLLM's and SGLang's
// max-concurrency modes do), and the per-request timings are folded into
// the level's throughput and latency numbers.
#include <map>
#include <string>
#include <vector>

#include "options.h"
#include "stats.h"
#include "stream_client.h"
#include "workload.h"

namespace nibble::serve_bench {

struct LevelResult {
  int concurrency = 0;
  int requests_ok = 0;
  int errors = 0;
  int short_outputs = 0;  // finished without the asked max_tokens
  double duration_s = 0;  // first request sent to last one finished
  long long prompt_tokens = 0;
  long long output_tokens = 0;
  double requests_per_s = 0;
  double output_tokens_per_s = 0;
  double total_tokens_per_s = 0;
  Summary ttft_ms, itl_ms, tpot_ms, e2e_ms;
  std::map<std::string, int> error_counts;  // error message -> how often
};

// Folds finished requests into a level result (pure; used by run_level and tests).
LevelResult summarize_level(int concurrency, const std::vector<RequestResult>& results,
                            double duration_s, int asked_max_tokens);

LevelResult run_level(const Options& options, const Workload& workload, int level_index,
                      int concurrency);

// The API path of the chosen endpoint.
std::string endpoint_path(Endpoint endpoint);

}  // namespace nibble::serve_bench
