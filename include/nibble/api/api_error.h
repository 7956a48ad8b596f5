#pragma once
// OpenAI-shaped errors: {"error":{"message","type","param","code"}}. Anything a
// client can cause throws ApiError; the server's one boundary turns it (and any
// other exception) into the HTTP status and JSON body.
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace nibble::api {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string message, std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt);

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::optional<std::string>& code() const { return code_; }
  nlohmann::json to_json() const;

  // The usual cases.
  static ApiError invalid_request(const std::string& message, std::optional<std::string> param = std::nullopt,
                                  std::optional<std::string> code = std::nullopt);
  static ApiError context_length_exceeded(const std::string& message);
  static ApiError model_not_found(const std::string& model);
  static ApiError not_found(const std::string& message);
  static ApiError unauthorized();
  static ApiError rate_limited(const std::string& message);
  static ApiError unavailable(const std::string& message);
  static ApiError internal(const std::string& message);

 private:
  int status_;
  std::string type_;
  std::optional<std::string> param_;
  std::optional<std::string> code_;
};

// {"error":{...}} for any status/type/message.
nlohmann::json error_body(const std::string& message, const std::string& type,
                          const std::optional<std::string>& param, const std::optional<std::string>& code);

}  // namespace nibble::api
