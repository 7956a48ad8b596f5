#pragma once
// HTTP-side settings of `nibble serve`.
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace nibble::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8000;                  // 0 = any free port
  std::string served_model_name;    // the id of GET /v1/models
  std::string api_key;              // empty = no authentication
  std::vector<std::string> allowed_origins;  // CORS; "*" allows any origin; empty = no CORS headers
  size_t max_body_size = 16 * 1024 * 1024;
  int max_connections = 512;        // HTTP worker threads (each SSE stream holds one)
  std::chrono::seconds read_timeout{60};
  std::chrono::seconds write_timeout{60};
  std::chrono::seconds keep_alive_timeout{5};
  std::string system_fingerprint = "fp_nibble";
};

}  // namespace nibble::server
