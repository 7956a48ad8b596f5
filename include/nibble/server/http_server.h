#pragma once
// The OpenAI-compatible HTTP server: routes, SSE streaming, auth, CORS, limits,
// metrics, health and graceful shutdown. It listens before the model is
// ready (/health answers 503 until set_model()).
#include <memory>

#include "nibble/server/server_config.h"
#include "nibble/server/serving_model.h"

namespace nibble::server {

class HttpServer {
 public:
  explicit HttpServer(ServerConfig config);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0 picks a free one) and returns the bound port;
  // throws nibble::Error when the address cannot be bound.
  int bind();
  // Serves until stop(); returns once in-flight requests have ended.
  void run();
  // The model is loaded: generation endpoints and /health open up.
  void set_model(const ServingModel& model);
  // Draining: /health answers 503 and new generation requests are refused.
  void begin_drain();
  // Stops accepting connections; run() returns when in-flight handlers end.
  void stop();
  int active_generations() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble::server
