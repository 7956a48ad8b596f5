#include "json_fields.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "nibble/core/error.h"

namespace nibble::detail {
namespace {

}  // namespace

std::string describe_json_value(const nlohmann::json& v) {
  // Containers are never dumped: dump() recurses, and a hostile file can nest
  // arrays deeper than the stack.
  if (v.is_array()) return "an array of " + std::to_string(v.size()) + " items";
  if (v.is_object()) return "an object";
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

JsonFields::JsonFields(const nlohmann::json& object, std::string source)
    : object_(object), source_(std::move(source)) {}

const nlohmann::json* JsonFields::get(const std::string& key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

bool JsonFields::has(const std::string& key) const { return get(key) != nullptr; }

void JsonFields::fail(const std::string& key, const std::string& what) const {
  throw Error(source_ + ": key '" + key + "' " + what);
}

std::optional<long long> JsonFields::integer(const std::string& key) const {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  if (v->is_number_unsigned()) {
    auto u = v->get<unsigned long long>();
    if (u > static_cast<unsigned long long>(std::numeric_limits<long long>::max())) fail(key, "is too large");
    return static_cast<long long>(u);
  }
  if (v->is_number_integer()) return v->get<long long>();
  if (v->is_number_float()) {  // 4096.0 is accepted, 0.5 is not
    double d = v->get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<long long>(d);
  }
  fail(key, "must be an integer, got " + describe_json_value(*v));
}

std::optional<double> JsonFields::number(const std::string& key) const {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) fail(key, "must be a number, got " + describe_json_value(*v));
  double d = v->get<double>();
  if (!std::isfinite(d)) fail(key, "must be finite, got " + describe_json_value(*v));
  return d;
}

std::optional<bool> JsonFields::boolean(const std::string& key) const {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) fail(key, "must be true or false, got " + describe_json_value(*v));
  return v->get<bool>();
}

std::optional<std::string> JsonFields::string(const std::string& key) const {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(key, "must be a string, got " + describe_json_value(*v));
  return v->get<std::string>();
}

std::optional<std::vector<int>> JsonFields::int_or_list(const std::string& key) const {
  const auto* v = get(key);
  if (!v) return std::nullopt;
  std::vector<int> out;
  auto take = [&](const nlohmann::json& e) {
    if (!e.is_number_integer() || e.get<long long>() < 0 || e.get<long long>() > std::numeric_limits<int>::max())
      fail(key, "must be a non-negative integer or a list of them, got " + describe_json_value(*v));
    out.push_back(static_cast<int>(e.get<long long>()));
  };
  if (v->is_array()) {
    for (const auto& e : *v) take(e);
  } else {
    take(*v);
  }
  return out;
}

int JsonFields::required_int(const std::string& key) const {
  auto v = integer(key);
  if (!v) fail(key, "is missing");
  if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) fail(key, "is out of range");
  return static_cast<int>(*v);
}

int JsonFields::int_in(const std::string& key, int fallback, long long lo, long long hi) const {
  auto v = integer(key);
  if (!v) return fallback;
  if (*v < lo || *v > hi)
    fail(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(*v));
  return static_cast<int>(*v);
}

int JsonFields::required_int_in(const std::string& key, long long lo, long long hi) const {
  if (!has(key)) fail(key, "is missing");
  return int_in(key, 0, lo, hi);
}

nlohmann::json parse_json_object(const std::string& text, const std::string& source) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(source + ": not valid JSON");
  if (!j.is_object()) throw Error(source + ": expected a JSON object at the top level");
  return j;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path);
  return ss.str();
}

}  // namespace nibble::detail
