#include "options.h"

#include <CLI/CLI.hpp>

#include <charconv>
#include <cstdio>

#include "nibble/core/error.h"

namespace nibble::serve_bench {

namespace {
// Bounds that keep one run finite and the thread count sane.
constexpr int kMaxConcurrency = 4096;
constexpr int kMaxRequestsPerClient = 100000;
constexpr int kMaxTokens = 1 << 20;
constexpr double kMaxDurationS = 24 * 3600;
}  // namespace

std::vector<int> parse_int_list(const std::string& text, const std::string& option, int min_value,
                                int max_value) {
  std::vector<int> values;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    int value = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc{} || end != item.data() + item.size())
      throw Error(option + ": '" + item + "' in '" + text + "' is not an integer");
    if (value < min_value || value > max_value)
      throw Error(option + ": " + item + " is outside [" + std::to_string(min_value) + ", " +
                  std::to_string(max_value) + "]");
    values.push_back(value);
    start = comma + 1;
  }
  return values;
}

Target parse_target(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    throw Error("--url '" + url + "': only http:// URLs are supported");
  std::string rest = url.substr(scheme.size());
  const std::size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (path.size() >= 3 && path.compare(path.size() - 3, 3, "/v1") == 0) path.resize(path.size() - 3);

  Target target;
  std::string port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string::npos) throw Error("--url '" + url + "': unterminated [IPv6] host");
    target.host = authority.substr(1, close - 1);
    const std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw Error("--url '" + url + "': junk after the host");
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    target.host = authority.substr(0, colon);
    if (colon != std::string::npos) port_text = authority.substr(colon + 1);
  }
  if (target.host != "127.0.0.1" && target.host != "localhost" && target.host != "::1")
    throw Error("--url '" + url + "': host '" + target.host +
                "' is not loopback; serve_bench only drives 127.0.0.1, localhost or [::1]");
  if (!port_text.empty()) target.port = parse_int_list(port_text, "--url port", 1, 65535).front();
  else target.port = 80;
  target.base_path = path;
  return target;
}

std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  CLI::App app{
      "serve_bench: drives a running OpenAI-compatible server (nibble serve) with concurrent\n"
      "streaming clients and reports throughput, TTFT and inter-token latency per level."};
  std::string concurrency = "1,8,32,128";
  std::string prompt_tokens = "128,512,1024";
  std::string endpoint = "completions";
  double duration = 0;
  app.add_option("--url", o.url, "server base URL (loopback only)")->capture_default_str();
  app.add_option("--model", o.model, "model id (default: the first of GET /v1/models)");
  app.add_option("--api-key", o.api_key, "sent as Authorization: Bearer KEY");
  app.add_option("--endpoint", endpoint, "completions or chat")
      ->check(CLI::IsMember({"completions", "chat"}))
      ->capture_default_str();
  app.add_option("--concurrency", concurrency, "concurrent clients per level, comma-separated")
      ->capture_default_str();
  auto* per_client = app.add_option("--requests-per-client", o.requests_per_client,
                                    "requests each client sends per level")
                         ->check(CLI::Range(1, kMaxRequestsPerClient))
                         ->capture_default_str();
  app.add_option("--duration", duration, "seconds per level; clients start requests until it passes")
      ->check(CLI::Range(0.001, kMaxDurationS))
      ->excludes(per_client);
  app.add_option("--prompt-tokens", prompt_tokens,
                 "prompt lengths in tokens; each request draws one (seeded), comma-separated")
      ->capture_default_str();
  app.add_option("--max-tokens", o.max_tokens, "output tokens per request (ignore_eos is set)")
      ->check(CLI::Range(1, kMaxTokens))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the prompt mix")->capture_default_str();
  app.add_option("--warmup", o.warmup_requests, "untimed requests before the first level")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--request-timeout", o.request_timeout_s, "seconds one request may take")
      ->check(CLI::Range(0.1, kMaxDurationS))
      ->capture_default_str();
  app.add_option("--temperature", o.temperature, "sampling temperature")->capture_default_str();
  app.add_option("--json", o.json_path, "also write the results as JSON to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw Error(e.what());
  }
  o.target = parse_target(o.url);
  o.endpoint = endpoint == "chat" ? Endpoint::chat : Endpoint::completions;
  o.concurrency = parse_int_list(concurrency, "--concurrency", 1, kMaxConcurrency);
  o.prompt_tokens = parse_int_list(prompt_tokens, "--prompt-tokens", 1, kMaxTokens);
  if (duration > 0) o.duration_s = duration;
  return o;
}

}  // namespace nibble::serve_bench
