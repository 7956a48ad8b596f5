#pragma once
// Checked access to tokenizer.json fields: errors name the file and field at fault.
#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"

namespace nibble::tokenizer_detail {

inline const nlohmann::json& require_field(const nlohmann::json& obj, const char* key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) throw Error(where + ": missing field \"" + key + "\"");
  return obj[key];
}

inline std::string require_string(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto& v = require_field(obj, key, where);
  if (!v.is_string()) throw Error(where + "." + key + ": expected a string, got " + v.dump());
  return v.get<std::string>();
}

inline std::string optional_string(const nlohmann::json& obj, const char* key, const std::string& where,
                                   const std::string& fallback) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_string()) throw Error(where + "." + key + ": expected a string, got " + obj[key].dump());
  return obj[key].get<std::string>();
}

inline bool optional_bool(const nlohmann::json& obj, const char* key, const std::string& where, bool fallback) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) throw Error(where + "." + key + ": expected true or false, got " + obj[key].dump());
  return obj[key].get<bool>();
}

inline const nlohmann::json& require_array(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto& v = require_field(obj, key, where);
  if (!v.is_array()) throw Error(where + "." + key + ": expected an array, got " + v.type_name());
  return v;
}

inline std::string type_of(const nlohmann::json& spec, const std::string& where) {
  if (!spec.is_object()) throw Error(where + ": expected an object, got " + std::string(spec.type_name()));
  return require_string(spec, "type", where);
}

}  // namespace nibble::tokenizer_detail
