#pragma once
// The value type of the Jinja evaluator, modelled on the Python objects Jinja2
// works with: Undefined, None, bool, int, float, str, list/tuple, dict,
// namespace and callables. Lists and dicts are shared (reference semantics, as
// in Python) so that namespace attributes can be updated in place.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace nibble::jinja {

struct Value;
struct CallArgs;
class Evaluator;

using Array = std::vector<Value>;
using Entries = std::vector<std::pair<std::string, Value>>;

// Values nest at most this deep, so that printing, comparing and destroying
// them cannot overflow the stack (Python's recursion limit plays this role).
constexpr int kMaxValueDepth = 500;

struct ArrayData {
  Array items;
  bool is_tuple = false;
  int depth = 1;
};
struct ObjectData {
  Entries entries;  // insertion order, as a Python dict
  bool is_namespace = false;
  int depth = 1;
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void set(const std::string& key, Value value);
};
struct Function {
  std::string name;
  std::function<Value(CallArgs&, Evaluator&)> call;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, Array, Object, Function };

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // string value; for Undefined, the hint naming what is missing
  std::shared_ptr<ArrayData> array;
  std::shared_ptr<ObjectData> object;
  std::shared_ptr<Function> function;

  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value list(Array items = {});
  static Value tuple(Array items);
  static Value dict(Entries entries = {});
  static Value callable(std::string name, std::function<Value(CallArgs&, Evaluator&)> fn);
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_int_like() const { return kind == Kind::Int || kind == Kind::Bool; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Bool || kind == Kind::Float; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  bool is_mapping() const { return kind == Kind::Object && !object->is_namespace; }
  bool is_callable() const { return kind == Kind::Function; }
  int64_t as_int() const { return kind == Kind::Bool ? (b ? 1 : 0) : i; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(as_int()); }

  bool truthy() const;
  // Nesting depth of a list/dict value (0 for scalars).
  int depth() const;
  // Python type name, as used in Python error messages ("str", "dict", ...).
  std::string type_name() const;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // Argument `index` by position or `name` by keyword; Undefined when absent.
  Value get(size_t index, const std::string& name) const;
  bool has(size_t index, const std::string& name) const;
  // Throws when more positional arguments or unknown keywords are given.
  void expect_at_most(size_t count, const std::vector<std::string>& names, const std::string& what) const;
};

// Python semantics shared by the evaluator, filters and tests.
bool values_equal(const Value& a, const Value& b);
// Three-way comparison as Python's < does; throws for unorderable types.
int compare_values(const Value& a, const Value& b);
// str(value) as Python/Jinja prints it.
std::string to_str(const Value& v);
// repr(value) as Python writes it inside list/dict reprs.
std::string to_repr(const Value& v);
// repr(float) as Python writes it: shortest round-trip digits.
std::string format_float(double v);
// Python's json.dumps with ensure_ascii=False.
struct JsonDumpOptions {
  int indent = -1;  // -1: no indentation
  std::string indent_text;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
std::string json_dumps(const Value& v, const JsonDumpOptions& options);

// Unicode helpers over UTF-8 strings (code points, as Python's str counts them).
std::u32string utf8_decode(const std::string& s);
std::string utf8_encode(const std::u32string& s);
size_t utf8_length(const std::string& s);
bool is_py_space(char32_t c);

}  // namespace nibble::jinja
