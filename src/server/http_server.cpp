#include "nibble/server/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "nibble/api/api_error.h"
#include "nibble/api/responses.h"
#include "nibble/core/error.h"
#include "server_state.h"

namespace nibble::server {

using api::ApiError;
using nlohmann::json;

namespace {

constexpr const char* kGenerationPaths[] = {"/v1/chat/completions", "/v1/completions"};

bool is_generation_path(const std::string& path) {
  return std::find(std::begin(kGenerationPaths), std::end(kGenerationPaths), path) != std::end(kGenerationPaths);
}

// A client's X-Request-Id when it is short and printable, else a fresh one.
std::string choose_request_id(const httplib::Request& req) {
  std::string id = req.get_header_value("X-Request-Id");
  bool usable = !id.empty() && id.size() <= 128 &&
                std::all_of(id.begin(), id.end(), [](char c) { return c > 32 && c < 127; });
  return usable ? id : api::make_response_id("req-");
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(b.size(), 1)]);
  return diff == 0;
}

bool needs_auth(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path == "/tokenize" || path == "/detokenize";
}

bool authorized(const ServerConfig& config, const httplib::Request& req) {
  if (config.api_key.empty()) return true;
  std::string bearer = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (bearer.rfind(prefix, 0) == 0 && constant_time_equal(bearer.substr(prefix.size()), config.api_key)) return true;
  std::string key = req.get_header_value("x-api-key");
  return !key.empty() && constant_time_equal(key, config.api_key);
}

// CORS headers for an allowed Origin; returns whether the origin is allowed.
bool apply_cors(const ServerConfig& config, const httplib::Request& req, httplib::Response& res) {
  if (config.allowed_origins.empty() || !req.has_header("Origin")) return false;
  std::string origin = req.get_header_value("Origin");
  bool any = std::find(config.allowed_origins.begin(), config.allowed_origins.end(), "*") != config.allowed_origins.end();
  bool listed = std::find(config.allowed_origins.begin(), config.allowed_origins.end(), origin) !=
                config.allowed_origins.end();
  if (!any && !listed) return false;
  res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
  if (!any) res.set_header("Vary", "Origin");
  res.set_header("Access-Control-Expose-Headers", "X-Request-Id");
  return true;
}

httplib::Server::HandlerResponse pre_route(const ServerState& state, const httplib::Request& req,
                                           httplib::Response& res) {
  res.set_header("X-Request-Id", choose_request_id(req));
  bool cors = apply_cors(state.config, req, res);
  if (req.method == "OPTIONS") {
    if (cors) {
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      std::string asked = req.get_header_value("Access-Control-Request-Headers");
      res.set_header("Access-Control-Allow-Headers",
                     asked.empty() ? "Authorization, Content-Type, X-Request-Id, x-api-key" : asked);
      res.set_header("Access-Control-Max-Age", "600");
    }
    res.status = 204;
    return httplib::Server::HandlerResponse::Handled;
  }
  if (needs_auth(req.path) && !authorized(state.config, req)) {
    res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, 401, ApiError::unauthorized().to_json());
    return httplib::Server::HandlerResponse::Handled;
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

// Fills the body of error statuses httplib produces itself (404, 413, 400...).
httplib::Server::HandlerResponse fill_error(const ServerState& state, const httplib::Request& req,
                                            httplib::Response& res) {
  if (!res.body.empty() || res.is_chunked_content_provider_) return httplib::Server::HandlerResponse::Unhandled;
  json body;
  switch (res.status) {
    case 404:
      body = ApiError::not_found(fmt::format("Unknown route: {} {}", req.method, req.path)).to_json();
      break;
    case 413:
      body = api::error_body(fmt::format("The request body exceeds the limit of {} bytes.", state.config.max_body_size),
                             "invalid_request_error", std::nullopt, "request_too_large");
      break;
    default:
      body = api::error_body(fmt::format("HTTP error {}", res.status),
                             res.status >= 500 ? "internal_error" : "invalid_request_error", std::nullopt, std::nullopt);
  }
  res.set_content(dump_json(body), "application/json");
  return httplib::Server::HandlerResponse::Handled;
}

json model_card(const ServerState& state, const ServingModel& model) {
  return {{"id", state.config.served_model_name},
          {"object", "model"},
          {"created", 0},
          {"owned_by", "nibble"},
          {"root", model.root},
          {"parent", nullptr},
          {"max_model_len", model.max_model_len}};
}

void register_info_routes(httplib::Server& http, ServerState& state) {
  http.Get("/health", [&state](const httplib::Request&, httplib::Response& res) {
    if (state.draining)
      send_json(res, 503, {{"status", "draining"}});
    else if (!state.model.load())
      send_json(res, 503, {{"status", "loading"}});
    else
      send_json(res, 200, {{"status", "ok"}});
  });
  http.Get("/v1/models", guarded([&state](const httplib::Request&, httplib::Response& res) {
             const ServingModel* model = state.model.load();
             if (!model) throw ApiError::unavailable("The model is still loading; retry shortly.");
             send_json(res, 200, {{"object", "list"}, {"data", json::array({model_card(state, *model)})}});
           }));
  http.Get(R"(/v1/models/(.+))", guarded([&state](const httplib::Request& req, httplib::Response& res) {
             const ServingModel* model = state.model.load();
             if (!model) throw ApiError::unavailable("The model is still loading; retry shortly.");
             state.check_model_name(req.matches[1]);
             send_json(res, 200, model_card(state, *model));
           }));
  http.Get("/metrics", [&state](const httplib::Request&, httplib::Response& res) {
    const ServingModel* model = state.model.load();
    EngineStats stats;
    if (model) stats = model->engine->stats();
    res.set_content(state.metrics.render(model ? &stats : nullptr), "text/plain; version=0.0.4");
  });
  http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"version", "0.1.0"}});
  });
}

// 405 with an Allow header for the wrong method on a known route.
void register_method_guards(httplib::Server& http) {
  auto not_allowed = [](const char* allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      send_json(res, 405,
                api::error_body(fmt::format("Method {} is not allowed on {}; use {}.", req.method, req.path, allow),
                                "invalid_request_error", std::nullopt, "method_not_allowed"));
    };
  };
  for (const char* path : {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"}) {
    http.Get(path, not_allowed("POST"));
    http.Put(path, not_allowed("POST"));
    http.Delete(path, not_allowed("POST"));
    http.Patch(path, not_allowed("POST"));
  }
  for (const char* path : {"/v1/models", "/health", "/metrics"}) {
    http.Post(path, not_allowed("GET"));
    http.Put(path, not_allowed("GET"));
    http.Delete(path, not_allowed("GET"));
  }
}

}  // namespace

struct HttpServer::Impl {
  ServerState state;
  httplib::Server http;
  int listen_fd = -1;
};

namespace {

// The Debian build of cpp-httplib listens with a backlog of 5, so bursts of
// new connections (128 clients at once) overflow it and get reset. Re-listening
// on the bound socket raises the backlog; the options keep httplib's
// SO_REUSEADDR but not its SO_REUSEPORT, so a second server on the same port
// fails to start instead of silently sharing it.
constexpr int kListenBacklog = 4096;

void listen_socket_options(int fd, int* listen_fd) {
  int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  *listen_fd = fd;
}

}  // namespace

HttpServer::HttpServer(ServerConfig config) : impl_(std::make_unique<Impl>()) {
  ServerState& state = impl_->state;
  state.config = std::move(config);
  httplib::Server& http = impl_->http;
  size_t threads = static_cast<size_t>(std::max(1, state.config.max_connections));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(state.config.max_body_size);
  int* listen_fd = &impl_->listen_fd;
  http.set_socket_options([listen_fd](socket_t fd) { listen_socket_options(fd, listen_fd); });
  http.set_read_timeout(state.config.read_timeout);
  http.set_write_timeout(state.config.write_timeout);
  http.set_keep_alive_timeout(state.config.keep_alive_timeout.count());
  http.set_keep_alive_max_count(1000);
  http.set_tcp_nodelay(true);
  http.set_pre_routing_handler(
      [&state](const httplib::Request& req, httplib::Response& res) { return pre_route(state, req, res); });
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [&state](const httplib::Request& req, httplib::Response& res) { return fill_error(state, req, res); }));
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (is_generation_path(req.path) && res.status == 200) return;  // logged with token counts by the handler
    spdlog::info("{} {} {} {}", res.get_header_value("X-Request-Id"), req.method, req.path, res.status);
  });
  register_info_routes(http, state);
  register_completion_routes(http, state);
  register_tokenize_routes(http, state);
  register_method_guards(http);
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  const auto& config = impl_->state.config;
  int port = config.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(config.host);
    NIBBLE_CHECK(port > 0, fmt::format("cannot listen on {}: no free port", config.host));
  } else {
    NIBBLE_CHECK(impl_->http.bind_to_port(config.host, config.port),
                 fmt::format("cannot listen on {}:{} (address in use or not available)", config.host, config.port));
  }
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, kListenBacklog);
  return port;
}

void HttpServer::run() { impl_->http.listen_after_bind(); }

void HttpServer::set_model(const ServingModel& model) {
  NIBBLE_CHECK(model.engine && model.tokenizer && model.codec, "set_model: engine, tokenizer and codec are required");
  impl_->state.model_storage = std::make_unique<ServingModel>(model);
  impl_->state.model.store(impl_->state.model_storage.get());
}

void HttpServer::begin_drain() { impl_->state.draining = true; }

void HttpServer::stop() { impl_->http.stop(); }

int HttpServer::active_generations() const { return impl_->state.active_generations.load(); }

}  // namespace nibble::server
