// serve_bench: end-to-end serving benchmark for an OpenAI-compatible server
// on this machine (nibble serve, vLLM, llama-server, SGLang). For each
// concurrency level it runs that many streaming clients with a seeded
// prompt-length mix and fixed output length, and reports requests/s,
// output and total tokens/s, TTFT, ITL and TPOT percentiles and errors.
//
//   serve_bench --url http://127.0.0.1:8000 --concurrency 1,8,32,128
//               --prompt-tokens 128,512,1024 --max-tokens 128 --json out.json
#include <cstdio>
#include <fstream>

#include "nibble/core/error.h"
#include "options.h"
#include "report.h"
#include "runner.h"
#include "setup.h"

using namespace nibble::serve_bench;

namespace {

int run(Options options) {
  StreamClient setup_client(options.target, options.api_key, options.request_timeout_s);
  options.model = resolve_model(setup_client, options);
  RunInfo info{options.model, {}};
  const Workload workload(options, make_prompt_source(setup_client, options, info.prompt_mode));
  std::fprintf(stderr, "serve_bench: model %s at %s, prompts: %s\n", options.model.c_str(),
               options.url.c_str(), info.prompt_mode.c_str());

  const std::string path = endpoint_path(options.endpoint);
  for (int i = 0; i < options.warmup_requests; ++i) {
    const RequestResult r = setup_client.stream(path, workload.body(workload.spec(-1, 0, i)), options.endpoint);
    if (!r.ok) throw nibble::Error("warm-up request failed: " + r.error);
  }

  std::vector<LevelResult> levels;
  for (std::size_t i = 0; i < options.concurrency.size(); ++i) {
    const int concurrency = options.concurrency[i];
    std::fprintf(stderr, "serve_bench: concurrency %d ...\n", concurrency);
    levels.push_back(run_level(options, workload, static_cast<int>(i), concurrency));
    const LevelResult& l = levels.back();
    std::fprintf(stderr, "serve_bench: concurrency %d: %d ok, %d errors, %.1f output tok/s\n",
                 concurrency, l.requests_ok, l.errors, l.output_tokens_per_s);
  }
  std::fputs(format_table(levels).c_str(), stdout);
  if (!options.json_path.empty()) {
    std::ofstream out(options.json_path);
    out << to_json(options, info, levels).dump(2) << '\n';
    if (!out) throw nibble::Error("--json: cannot write " + options.json_path);
  }
  for (const LevelResult& l : levels)
    if (l.errors > 0) return 3;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto options = parse_options(argc, argv);
    if (!options) return 0;
    return run(std::move(*options));
  } catch (const nibble::Error& e) {
    std::fprintf(stderr, "serve_bench: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve_bench: internal error: %s\n", e.what());
    return 2;
  }
}
