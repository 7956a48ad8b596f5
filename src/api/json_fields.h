#pragma once
// Typed, range-checked reads of optional JSON fields. A field that is absent
// or null reads as nullopt; a wrong type or an out-of-range value throws a 400
// ApiError naming the field. Private to api/.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace nibble::api::fields {

bool present(const nlohmann::json& body, const char* name);
std::optional<bool> get_bool(const nlohmann::json& body, const char* name);
std::optional<double> get_number(const nlohmann::json& body, const char* name, double min, double max,
                                 bool min_exclusive = false);
std::optional<long long> get_int(const nlohmann::json& body, const char* name, long long min, long long max);
std::optional<std::string> get_string(const nlohmann::json& body, const char* name);
// Reads an integer from a JSON value (an integer, or a float with an integral value).
std::optional<long long> as_integer(const nlohmann::json& value);

[[noreturn]] void fail(const std::string& param, const std::string& message);

}  // namespace nibble::api::fields
