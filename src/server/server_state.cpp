#include "server_state.h"

#include <spdlog/spdlog.h>

#include "nibble/api/api_error.h"

namespace nibble::server {

using api::ApiError;

const ServingModel& ServerState::ready_model() const {
  if (draining) throw ApiError::unavailable("The server is shutting down.");
  const ServingModel* m = model.load();
  if (!m) throw ApiError::unavailable("The model is still loading; retry shortly.");
  return *m;
}

void ServerState::check_model_name(const std::string& name) const {
  if (!name.empty() && name != config.served_model_name) throw ApiError::model_not_found(name);
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

std::string request_id_of(const httplib::Response& res) { return res.get_header_value("X-Request-Id"); }

nlohmann::ordered_json ordered_messages(const std::string& raw_body, const nlohmann::json& validated) {
  nlohmann::ordered_json raw = nlohmann::ordered_json::parse(raw_body, nullptr, false);
  if (raw.is_discarded() || !raw.contains("messages") || raw["messages"].size() != validated.size()) return validated;
  nlohmann::ordered_json out = raw["messages"];
  for (size_t i = 0; i < validated.size(); ++i) {
    out[i]["role"] = validated[i]["role"];
    out[i]["content"] = validated[i]["content"];
  }
  return out;
}

httplib::Server::Handler guarded(httplib::Server::Handler handler) {
  return [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    try {
      handler(req, res);
    } catch (const ApiError& e) {
      if (e.status() == 429) res.set_header("Retry-After", "1");
      send_json(res, e.status(), e.to_json());
    } catch (const std::exception& e) {
      spdlog::error("{} {}: internal error: {}", req.method, req.path, e.what());
      send_json(res, 500, ApiError::internal(e.what()).to_json());
    }
  };
}

}  // namespace nibble::server
