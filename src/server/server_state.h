#pragma once
// State shared by the server's route files. Private to server/.
#include <atomic>
#include <memory>
#include <string>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "nibble/server/http_server.h"
#include "nibble/server/metrics.h"

namespace nibble::server {

struct ServerState {
  ServerConfig config;
  Metrics metrics;
  std::unique_ptr<ServingModel> model_storage;
  std::atomic<const ServingModel*> model{nullptr};  // set once, when loading is done
  std::atomic<bool> draining{false};
  std::atomic<int> active_generations{0};

  // The ready model, or throws 503 (loading / draining).
  const ServingModel& ready_model() const;
  // 404 model_not_found unless name is empty or the served name.
  void check_model_name(const std::string& name) const;
};

// Counts a generation in flight for as long as it lives.
class ActiveGeneration {
 public:
  explicit ActiveGeneration(std::atomic<int>& counter) : counter_(counter) { ++counter_; }
  ~ActiveGeneration() { --counter_; }
  ActiveGeneration(const ActiveGeneration&) = delete;
  ActiveGeneration& operator=(const ActiveGeneration&) = delete;

 private:
  std::atomic<int>& counter_;
};

// JSON text that never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& value);
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// The request id the pre-routing step assigned (echoed in X-Request-Id).
std::string request_id_of(const httplib::Response& res);

// The validated messages in the client's key order (chat templates' `tojson`
// output depends on it): the raw body's messages with role and content
// replaced by their validated values.
nlohmann::ordered_json ordered_messages(const std::string& raw_body, const nlohmann::json& validated);

// The one boundary that turns exceptions into OpenAI error JSON.
httplib::Server::Handler guarded(httplib::Server::Handler handler);

void register_completion_routes(httplib::Server& http, ServerState& state);
void register_tokenize_routes(httplib::Server& http, ServerState& state);

}  // namespace nibble::server
