#pragma once
// Command-line options of serve_bench and the checks on them.
#include <optional>
#include <string>
#include <vector>

namespace nibble::serve_bench {

enum class Endpoint { completions, chat };

struct Target {
  std::string host;  // 127.0.0.1, localhost or ::1 only
  int port = 8000;
  std::string base_path;  // path prefix before /v1, usually empty
};

struct Options {
  std::string url = "http://127.0.0.1:8000";
  Target target;
  std::string model;  // empty: the first id of GET /v1/models
  std::string api_key;
  Endpoint endpoint = Endpoint::completions;
  std::vector<int> concurrency = {1, 8, 32, 128};
  int requests_per_client = 4;
  std::optional<double> duration_s;  // when set, clients loop until it passes
  std::vector<int> prompt_tokens = {128, 512, 1024};
  int max_tokens = 128;
  unsigned long long seed = 0;
  int warmup_requests = 1;
  double request_timeout_s = 600;
  double temperature = 0;
  std::string json_path;
};

// Parses "1,8,32"; every value must lie in [min_value, max_value].
std::vector<int> parse_int_list(const std::string& text, const std::string& option, int min_value,
                                int max_value);

// Accepts http:// URLs whose host is loopback (127.0.0.1, localhost, [::1]);
// a trailing "/v1" is dropped. Throws nibble::Error naming the fault.
Target parse_target(const std::string& url);

// Parses argv; returns nullopt after printing --help. Throws nibble::Error.
std::optional<Options> parse_options(int argc, char** argv);

}  // namespace nibble::serve_bench
