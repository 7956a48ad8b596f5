#include "json_fields.h"

#include <cmath>

#include <fmt/format.h>

#include "nibble/api/api_error.h"

namespace nibble::api::fields {

void fail(const std::string& param, const std::string& message) { throw ApiError::invalid_request(message, param); }

bool present(const nlohmann::json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

std::optional<bool> get_bool(const nlohmann::json& body, const char* name) {
  if (!present(body, name)) return std::nullopt;
  const auto& v = body.at(name);
  if (!v.is_boolean()) fail(name, fmt::format("'{}' must be a boolean, got {}", name, v.type_name()));
  return v.get<bool>();
}

std::optional<double> get_number(const nlohmann::json& body, const char* name, double min, double max,
                                 bool min_exclusive) {
  if (!present(body, name)) return std::nullopt;
  const auto& v = body.at(name);
  if (!v.is_number()) fail(name, fmt::format("'{}' must be a number, got {}", name, v.type_name()));
  double d = v.get<double>();
  bool below = min_exclusive ? d <= min : d < min;
  if (!std::isfinite(d) || below || d > max)
    fail(name, fmt::format("'{}' must be in {}{}, {}], got {}", name, min_exclusive ? "(" : "[", min, max, d));
  return d;
}

std::optional<long long> as_integer(const nlohmann::json& value) {
  if (value.is_number_integer()) {
    if (value.is_number_unsigned() && value.get<unsigned long long>() > 9007199254740992ULL) return 9007199254740992LL;
    return value.get<long long>();
  }
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15) return static_cast<long long>(d);
  }
  return std::nullopt;
}

std::optional<long long> get_int(const nlohmann::json& body, const char* name, long long min, long long max) {
  if (!present(body, name)) return std::nullopt;
  const auto& v = body.at(name);
  auto i = as_integer(v);
  if (!i) fail(name, fmt::format("'{}' must be an integer, got {}", name, v.is_number() ? v.dump() : v.type_name()));
  if (*i < min || *i > max) fail(name, fmt::format("'{}' must be in [{}, {}], got {}", name, min, max, *i));
  return *i;
}

std::optional<std::string> get_string(const nlohmann::json& body, const char* name) {
  if (!present(body, name)) return std::nullopt;
  const auto& v = body.at(name);
  if (!v.is_string()) fail(name, fmt::format("'{}' must be a string, got {}", name, v.type_name()));
  return v.get<std::string>();
}

}  // namespace nibble::api::fields
