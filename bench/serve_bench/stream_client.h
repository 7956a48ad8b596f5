#pragma once
// One benchmark client: a keep-alive HTTP connection to the server that
// sends streaming requests and timestamps every SSE chunk as it arrives.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "options.h"

namespace httplib {
class Client;
}

namespace nibble::serve_bench {

using Clock = std::chrono::steady_clock;

struct RequestResult {
  bool ok = false;
  std::string error;  // why it failed; empty when ok
  Clock::time_point sent;
  Clock::time_point finished;
  std::vector<Clock::time_point> content_times;  // arrival of each chunk with text
  int prompt_tokens = -1;      // from the usage chunk; -1 when absent
  int completion_tokens = -1;  // idem
  std::string finish_reason;

  double e2e_s() const { return std::chrono::duration<double>(finished - sent).count(); }
  // Output tokens: the server's usage, else the count of content chunks.
  int output_tokens() const {
    return completion_tokens >= 0 ? completion_tokens : static_cast<int>(content_times.size());
  }
};

class StreamClient {
 public:
  StreamClient(const Target& target, std::string api_key, double timeout_s);
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // Sends body to path ("/v1/completions" or "/v1/chat/completions") and
  // reads the stream to its end, the timeout, or the first protocol error.
  RequestResult stream(const std::string& path, const nlohmann::json& body, Endpoint endpoint);

  // Plain JSON calls for setup (GET /v1/models, POST /tokenize). Return
  // nullopt with `error` set on any failure.
  std::optional<nlohmann::json> get_json(const std::string& path, std::string& error);
  std::optional<nlohmann::json> post_json(const std::string& path, const nlohmann::json& body,
                                          std::string& error);

 private:
  std::optional<nlohmann::json> finish_json(int status, const std::string& body, bool sent,
                                            const std::string& what, std::string& error);
  Target target_;
  std::string api_key_;
  double timeout_s_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace nibble::serve_bench
