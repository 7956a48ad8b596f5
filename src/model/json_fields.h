#pragma once
// Typed access to the keys of a JSON object read from a file, with errors that
// name the file and the key ("config.json: key 'hidden_size' must be an integer,
// got "abc""). Absent keys and JSON null both count as "not given".
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace nibble::detail {

class JsonFields {
 public:
  // `object` must outlive this; `source` names the file (and object) in errors.
  JsonFields(const nlohmann::json& object, std::string source);

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const;  // present and not null
  const nlohmann::json* get(const std::string& key) const;  // null when absent or JSON null

  std::optional<long long> integer(const std::string& key) const;
  std::optional<double> number(const std::string& key) const;
  std::optional<bool> boolean(const std::string& key) const;
  std::optional<std::string> string(const std::string& key) const;
  // An integer or a list of integers (eos_token_id).
  std::optional<std::vector<int>> int_or_list(const std::string& key) const;

  int required_int(const std::string& key) const;
  // An integer in [lo, hi]; errors name the range.
  int int_in(const std::string& key, int fallback, long long lo, long long hi) const;
  int required_int_in(const std::string& key, long long lo, long long hi) const;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json& object_;
  std::string source_;
};

// A short, safe rendering of a value for error messages (containers are
// described, not printed).
std::string describe_json_value(const nlohmann::json& v);

// Parses text as a JSON object or throws naming `source`.
nlohmann::json parse_json_object(const std::string& text, const std::string& source);
std::string read_text_file(const std::string& path);

}  // namespace nibble::detail
