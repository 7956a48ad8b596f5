#include "report.h"

#include <fmt/format.h>

namespace nibble::serve_bench {

namespace {
nlohmann::json summary_json(const Summary& s) {
  return {{"count", s.count}, {"mean", s.mean}, {"p50", s.p50},
          {"p90", s.p90},     {"p99", s.p99},   {"max", s.max}};
}

std::string triple(const Summary& s) {
  if (s.count == 0) return "-";
  return fmt::format("{:.1f}/{:.1f}/{:.1f}", s.p50, s.p90, s.p99);
}
}  // namespace

std::string format_table(const std::vector<LevelResult>& levels) {
  std::string out = fmt::format("{:>5} {:>6} {:>6} {:>8} {:>9} {:>9} {:>24} {:>21} {:>21} {:>8}\n",
                                "conc", "ok", "errors", "req/s", "out tok/s", "tot tok/s",
                                "TTFT ms p50/p90/p99", "ITL ms p50/p90/p99",
                                "TPOT ms p50/p90/p99", "time s");
  for (const LevelResult& l : levels) {
    out += fmt::format("{:>5} {:>6} {:>6} {:>8.2f} {:>9.1f} {:>9.1f} {:>24} {:>21} {:>21} {:>8.1f}\n",
                       l.concurrency, l.requests_ok, l.errors, l.requests_per_s,
                       l.output_tokens_per_s, l.total_tokens_per_s, triple(l.ttft_ms),
                       triple(l.itl_ms), triple(l.tpot_ms), l.duration_s);
  }
  for (const LevelResult& l : levels) {
    if (l.short_outputs > 0)
      out += fmt::format("concurrency {}: {} requests ended before max_tokens (ignore_eos unsupported?)\n",
                         l.concurrency, l.short_outputs);
    for (const auto& [message, count] : l.error_counts)
      out += fmt::format("concurrency {}: {} x {}\n", l.concurrency, count, message);
  }
  return out;
}

nlohmann::json to_json(const Options& options, const RunInfo& info,
                       const std::vector<LevelResult>& levels) {
  nlohmann::json config = {
      {"url", options.url},
      {"model", info.model},
      {"endpoint", options.endpoint == Endpoint::chat ? "chat" : "completions"},
      {"prompt_tokens", options.prompt_tokens},
      {"prompt_mode", info.prompt_mode},
      {"max_tokens", options.max_tokens},
      {"seed", options.seed},
      {"temperature", options.temperature},
      {"warmup_requests", options.warmup_requests},
  };
  if (options.duration_s) config["duration_s"] = *options.duration_s;
  else config["requests_per_client"] = options.requests_per_client;

  nlohmann::json out_levels = nlohmann::json::array();
  for (const LevelResult& l : levels) {
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [message, count] : l.error_counts) errors[message] = count;
    out_levels.push_back({
        {"concurrency", l.concurrency},
        {"requests_ok", l.requests_ok},
        {"errors", l.errors},
        {"error_messages", errors},
        {"short_outputs", l.short_outputs},
        {"duration_s", l.duration_s},
        {"prompt_tokens", l.prompt_tokens},
        {"output_tokens", l.output_tokens},
        {"requests_per_s", l.requests_per_s},
        {"output_tokens_per_s", l.output_tokens_per_s},
        {"total_tokens_per_s", l.total_tokens_per_s},
        {"ttft_ms", summary_json(l.ttft_ms)},
        {"itl_ms", summary_json(l.itl_ms)},
        {"tpot_ms", summary_json(l.tpot_ms)},
        {"e2e_ms", summary_json(l.e2e_ms)},
    });
  }
  return {{"benchmark", "serve_bench"}, {"config", config}, {"levels", out_levels}};
}

}  // namespace nibble::serve_bench
