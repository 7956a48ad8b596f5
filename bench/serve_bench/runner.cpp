#include "runner.h"

#include <algorithm>
#include <barrier>
#include <thread>

namespace nibble::serve_bench {

namespace {
// Duration mode still ends: a client sends at most this many requests.
constexpr int kMaxRequestsPerClientInDuration = 100000;
// Distinct error messages kept per level; the rest are counted under "other".
constexpr std::size_t kMaxErrorKinds = 8;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
}  // namespace

std::string endpoint_path(Endpoint endpoint) {
  return endpoint == Endpoint::chat ? "/v1/chat/completions" : "/v1/completions";
}

LevelResult summarize_level(int concurrency, const std::vector<RequestResult>& results,
                            double duration_s, int asked_max_tokens) {
  LevelResult level;
  level.concurrency = concurrency;
  level.duration_s = duration_s;
  std::vector<double> ttft, itl, tpot, e2e;
  for (const RequestResult& r : results) {
    if (!r.ok) {
      ++level.errors;
      const std::string key = level.error_counts.size() < kMaxErrorKinds ||
                                      level.error_counts.count(r.error)
                                  ? r.error
                                  : std::string("other");
      ++level.error_counts[key];
      continue;
    }
    ++level.requests_ok;
    const int out = r.output_tokens();
    level.output_tokens += out;
    level.prompt_tokens += std::max(r.prompt_tokens, 0);
    if (out != asked_max_tokens) ++level.short_outputs;
    e2e.push_back(ms(r.finished - r.sent));
    if (r.content_times.empty()) continue;
    ttft.push_back(ms(r.content_times.front() - r.sent));
    for (std::size_t i = 1; i < r.content_times.size(); ++i)
      itl.push_back(ms(r.content_times[i] - r.content_times[i - 1]));
    // Time per output token after the first, however the server grouped
    // tokens into chunks.
    if (out > 1) tpot.push_back(ms(r.content_times.back() - r.content_times.front()) / (out - 1));
  }
  level.ttft_ms = summarize(ttft);
  level.itl_ms = summarize(itl);
  level.tpot_ms = summarize(tpot);
  level.e2e_ms = summarize(e2e);
  if (duration_s > 0) {
    level.requests_per_s = level.requests_ok / duration_s;
    level.output_tokens_per_s = static_cast<double>(level.output_tokens) / duration_s;
    level.total_tokens_per_s =
        static_cast<double>(level.prompt_tokens + level.output_tokens) / duration_s;
  }
  return level;
}

LevelResult run_level(const Options& options, const Workload& workload, int level_index,
                      int concurrency) {
  const std::string path = endpoint_path(options.endpoint);
  std::vector<std::vector<RequestResult>> per_client(static_cast<std::size_t>(concurrency));
  std::barrier start_line(concurrency + 1);
  Clock::time_point start;

  std::vector<std::thread> threads;
  threads.reserve(per_client.size());
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      StreamClient client(options.target, options.api_key, options.request_timeout_s);
      auto& mine = per_client[static_cast<std::size_t>(c)];
      start_line.arrive_and_wait();
      const int limit = options.duration_s ? kMaxRequestsPerClientInDuration : options.requests_per_client;
      const auto deadline =
          start + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(options.duration_s.value_or(0)));
      for (int i = 0; i < limit; ++i) {
        if (options.duration_s && Clock::now() >= deadline) break;
        const RequestSpec spec = workload.spec(level_index, c, i);
        mine.push_back(client.stream(path, workload.body(spec), options.endpoint));
      }
    });
  }
  start = Clock::now();
  start_line.arrive_and_wait();
  for (auto& t : threads) t.join();

  std::vector<RequestResult> all;
  Clock::time_point last = start;
  for (auto& results : per_client)
    for (auto& r : results) {
      last = std::max(last, r.finished);
      all.push_back(std::move(r));
    }
  const double duration_s = std::chrono::duration<double>(last - start).count();
  return summarize_level(concurrency, all, duration_s, options.max_tokens);
}

}  // namespace nibble::serve_bench
