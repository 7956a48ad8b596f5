#include "nibble/api/api_error.h"

namespace nibble::api {

ApiError::ApiError(int status, std::string type, std::string message, std::optional<std::string> param,
                   std::optional<std::string> code)
    : std::runtime_error(std::move(message)),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

nlohmann::json error_body(const std::string& message, const std::string& type,
                          const std::optional<std::string>& param, const std::optional<std::string>& code) {
  nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) e["param"] = *param;
  if (code) e["code"] = *code;
  return {{"error", e}};
}

nlohmann::json ApiError::to_json() const { return error_body(what(), type_, param_, code_); }

ApiError ApiError::invalid_request(const std::string& message, std::optional<std::string> param,
                                   std::optional<std::string> code) {
  return ApiError(400, "invalid_request_error", message, std::move(param), std::move(code));
}

ApiError ApiError::context_length_exceeded(const std::string& message) {
  return ApiError(400, "invalid_request_error", message, "messages", "context_length_exceeded");
}

ApiError ApiError::model_not_found(const std::string& model) {
  return ApiError(404, "invalid_request_error", "The model `" + model + "` does not exist.", "model",
                  "model_not_found");
}

ApiError ApiError::not_found(const std::string& message) {
  return ApiError(404, "invalid_request_error", message, std::nullopt, "not_found");
}

ApiError ApiError::unauthorized() {
  return ApiError(401, "invalid_request_error",
                  "Incorrect API key provided. Pass it as 'Authorization: Bearer <key>' or 'x-api-key'.",
                  std::nullopt, "invalid_api_key");
}

ApiError ApiError::rate_limited(const std::string& message) {
  return ApiError(429, "rate_limit_exceeded", message, std::nullopt, "rate_limit_exceeded");
}

ApiError ApiError::unavailable(const std::string& message) {
  return ApiError(503, "service_unavailable", message, std::nullopt, "service_unavailable");
}

ApiError ApiError::internal(const std::string& message) {
  return ApiError(500, "internal_error", message, std::nullopt, "internal_error");
}

}  // namespace nibble::api
