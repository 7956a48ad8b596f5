#include "jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja_error.h"

namespace nibble::jinja {

std::string located(const SourcePos& pos, const std::string& message) {
  return "chat template error at line " + std::to_string(pos.line) + ", column " +
         std::to_string(pos.column) + ": " + message;
}

const Value* ObjectData::find(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}
Value* ObjectData::find(const std::string& key) {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}
static int checked_depth(int depth) {
  if (depth > kMaxValueDepth) fail("sandbox limit: value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  return depth;
}

int Value::depth() const {
  if (kind == Kind::Array) return array->depth;
  if (kind == Kind::Object) return object->depth;
  return 0;
}

void ObjectData::set(const std::string& key, Value value) {
  depth = std::max(depth, checked_depth(value.depth() + 1));
  if (Value* existing = find(key)) {
    *existing = std::move(value);
  } else {
    entries.emplace_back(key, std::move(value));
  }
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.kind = Kind::String;
  v.s = std::move(x);
  return v;
}
Value Value::list(Array items) {
  Value v;
  v.kind = Kind::Array;
  v.array = std::make_shared<ArrayData>();
  v.array->items = std::move(items);
  for (const auto& item : v.array->items) v.array->depth = std::max(v.array->depth, checked_depth(item.depth() + 1));
  return v;
}
Value Value::tuple(Array items) {
  Value v = list(std::move(items));
  v.array->is_tuple = true;
  return v;
}
Value Value::dict(Entries entries) {
  Value v;
  v.kind = Kind::Object;
  v.object = std::make_shared<ObjectData>();
  v.object->entries = std::move(entries);
  for (const auto& [key, item] : v.object->entries)
    v.object->depth = std::max(v.object->depth, checked_depth(item.depth() + 1));
  return v;
}
Value Value::callable(std::string name, std::function<Value(CallArgs&, Evaluator&)> fn) {
  Value v;
  v.kind = Kind::Function;
  v.function = std::make_shared<Function>(Function{std::move(name), std::move(fn)});
  return v;
}

static Value from_json_at(const nlohmann::ordered_json& j, int level);

Value Value::from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 0); }

static Value from_json_at(const nlohmann::ordered_json& j, int level) {
  if (level > kMaxValueDepth) fail("JSON input nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      Array items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, level + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Entries entries;
      entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) entries.emplace_back(it.key(), from_json_at(it.value(), level + 1));
      return Value::dict(std::move(entries));
    }
    default:
      return Value::none();
  }
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return b;
    case Kind::Int:
      return i != 0;
    case Kind::Float:
      return f != 0.0;
    case Kind::String:
      return !s.empty();
    case Kind::Array:
      return !array->items.empty();
    case Kind::Object:
      return object->is_namespace || !object->entries.empty();
    case Kind::Function:
      return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Array:
      return array->is_tuple ? "tuple" : "list";
    case Kind::Object:
      return object->is_namespace ? "Namespace" : "dict";
    case Kind::Function:
      return "function";
  }
  return "object";
}

Value CallArgs::get(size_t index, const std::string& name) const {
  if (index < positional.size()) return positional[index];
  for (const auto& [k, v] : keyword)
    if (k == name) return v;
  return Value::undefined(name);
}
bool CallArgs::has(size_t index, const std::string& name) const {
  if (index < positional.size()) return true;
  for (const auto& [k, v] : keyword)
    if (k == name) return true;
  return false;
}
void CallArgs::expect_at_most(size_t count, const std::vector<std::string>& names, const std::string& what) const {
  if (positional.size() > count)
    fail(what + "() takes at most " + std::to_string(count) + " positional arguments (" +
         std::to_string(positional.size()) + " given)");
  for (const auto& [k, v] : keyword)
    if (std::find(names.begin(), names.end(), k) == names.end())
      fail(what + "() got an unexpected keyword argument '" + k + "'");
}

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None:
      return true;
    case Kind::String:
      return a.s == b.s;
    case Kind::Array: {
      if (a.array == b.array) return true;
      if (a.array->is_tuple != b.array->is_tuple) return false;
      const auto& x = a.array->items;
      const auto& y = b.array->items;
      if (x.size() != y.size()) return false;
      for (size_t k = 0; k < x.size(); ++k)
        if (!values_equal(x[k], y[k])) return false;
      return true;
    }
    case Kind::Object: {
      if (a.object == b.object) return true;
      if (a.object->is_namespace || b.object->is_namespace) return false;
      const auto& x = a.object->entries;
      if (x.size() != b.object->entries.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = b.object->find(k);
        if (!other || !values_equal(v, *other)) return false;
      }
      return true;
    }
    case Kind::Function:
      return a.function == b.function;
    default:
      return false;
  }
}

int compare_values(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // Python compares code points; UTF-8 byte order is the same order.
    int c = a.s.compare(b.s);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_array() && b.is_array() && a.array->is_tuple == b.array->is_tuple) {
    const auto& x = a.array->items;
    const auto& y = b.array->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (values_equal(x[k], y[k])) continue;
      return compare_values(x[k], y[k]);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  fail("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

std::string format_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then laid out as Python's float repr does:
  // positional for exponents -4 <= e < 16, scientific otherwise.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t epos = sci.find('e');
  std::string mantissa = sci.substr(0, epos);
  int exponent = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out = digits + std::string(static_cast<size_t>(exponent + 1 - static_cast<int>(digits.size())), '0') + ".0";
    } else {
      out = digits.substr(0, static_cast<size_t>(exponent + 1)) + "." + digits.substr(static_cast<size_t>(exponent + 1));
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += ebuf;
  }
  return negative ? "-" + out : out;
}

static std::string repr_string(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == static_cast<unsigned char>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

static std::string repr_at(const Value& v, int level);

std::string to_repr(const Value& v) { return repr_at(v, 0); }

static std::string repr_at(const Value& v, int level) {
  if (level > kMaxValueDepth) fail("maximum recursion depth exceeded while getting the repr of an object");
  switch (v.kind) {
    case Kind::String:
      return repr_string(v.s);
    case Kind::Array: {
      bool tuple = v.array->is_tuple;
      std::string out = tuple ? "(" : "[";
      const auto& items = v.array->items;
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += ", ";
        out += repr_at(items[k], level + 1);
      }
      if (tuple && items.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case Kind::Object: {
      std::string out = v.object->is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, e] : v.object->entries) {
        if (!first) out += ", ";
        first = false;
        out += repr_string(k) + ": " + repr_at(e, level + 1);
      }
      out += v.object->is_namespace ? "}>" : "}";
      return out;
    }
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.b ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.i);
    case Kind::Float:
      return format_float(v.f);
    case Kind::String:
      return v.s;
    case Kind::Function:
      return "<function " + v.function->name + ">";
    default:
      return to_repr(v);
  }
}

static void json_string_ascii(std::string& out, const std::string& s) {
  out += '"';
  for (char32_t c : utf8_decode(s)) {
    char buf[16];
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (c < 0x20 || (c >= 0x7f && c < 0x10000)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else if (c >= 0x10000) {
      char32_t v = c - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)),
                    static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

static void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  if (ensure_ascii) {
    json_string_ascii(out, s);
    return;
  }
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

static void json_dump_into(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  auto newline = [&](int lvl) {
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += o.indent_text;
  };
  switch (v.kind) {
    case Kind::None:
      out += "null";
      return;
    case Kind::Bool:
      out += v.b ? "true" : "false";
      return;
    case Kind::Int:
      out += std::to_string(v.i);
      return;
    case Kind::Float:
      if (std::isnan(v.f)) {
        out += "NaN";
      } else if (std::isinf(v.f)) {
        out += v.f > 0 ? "Infinity" : "-Infinity";
      } else {
        out += format_float(v.f);
      }
      return;
    case Kind::String:
      json_string(out, v.s, o.ensure_ascii);
      return;
    case Kind::Array: {
      const auto& items = v.array->items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += o.item_separator;
        if (o.indent >= 0) newline(level + 1);
        json_dump_into(out, items[k], o, level + 1);
      }
      if (o.indent >= 0) newline(level);
      out += ']';
      return;
    }
    case Kind::Object: {
      if (v.object->is_namespace) fail("Object of type Namespace is not JSON serializable");
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.object->entries) entries.push_back(&e);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      if (entries.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t k = 0; k < entries.size(); ++k) {
        if (k) out += o.item_separator;
        if (o.indent >= 0) newline(level + 1);
        json_string(out, entries[k]->first, o.ensure_ascii);
        out += o.key_separator;
        json_dump_into(out, entries[k]->second, o, level + 1);
      }
      if (o.indent >= 0) newline(level);
      out += '}';
      return;
    }
    default:
      fail("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  json_dump_into(out, v, options, 0);
  return out;
}

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t k = 0;
  while (k < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[k]);
    char32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c >> 5) == 0x6) {
      cp = c & 0x1f;
      len = 2;
    } else if ((c >> 4) == 0xe) {
      cp = c & 0x0f;
      len = 3;
    } else if ((c >> 3) == 0x1e) {
      cp = c & 0x07;
      len = 4;
    } else {
      out += 0xFFFD;
      ++k;
      continue;
    }
    if (k + len > s.size()) {
      out += 0xFFFD;
      break;
    }
    bool ok = true;
    for (size_t m = 1; m < len; ++m) {
      unsigned char cc = static_cast<unsigned char>(s[k + m]);
      if ((cc >> 6) != 0x2) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!ok) {
      out += 0xFFFD;
      ++k;
      continue;
    }
    out += cp;
    k += len;
  }
  return out;
}

std::string utf8_encode(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++n;
  return n;
}

bool is_py_space(char32_t c) {
  switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case '\v':
    case '\f':
    case 0x1c:
    case 0x1d:
    case 0x1e:
    case 0x1f:
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200a;
  }
}

}  // namespace nibble::jinja
