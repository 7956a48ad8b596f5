// Jinja2's filters, tests and globals, with Python's semantics.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <unordered_set>

#include <utf8proc.h>

#include "jinja_eval.h"
#include "jinja_strings.h"


namespace nibble::jinja {

[[noreturn]] void undefined_error(const Value& undefined) {
  fail(undefined.s.empty() ? std::string("value is undefined") : undefined.s);
}

namespace {

// ---- helpers for filters

Value attribute_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (cur.is_undefined()) return cur;
    int64_t index = 0;
    if (numeric && std::from_chars(part.data(), part.data() + part.size(), index).ec != std::errc()) numeric = false;
    cur = numeric ? get_item(cur, Value::integer(index)) : get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (v.is_string() && !case_sensitive) return Value::string(py_lower(v.s));
  return v;
}

Array require_iterable(const Value& v, const std::string& filter) {
  if (v.is_none() || v.is_number() || v.is_callable())
    fail("'" + v.type_name() + "' object is not iterable (filter " + filter + ")");
  return iterate(v);
}

CallArgs shift_args(const CallArgs& args, size_t from) {
  CallArgs out;
  for (size_t k = from; k < args.positional.size(); ++k) out.positional.push_back(args.positional[k]);
  out.keyword = args.keyword;
  return out;
}

double round_half_even(double x) { return x - std::remainder(x, 1.0); }

Value select_like(Evaluator& ev, const Value& input, CallArgs& args, bool by_attribute, bool keep) {
  std::string filter = by_attribute ? (keep ? "selectattr" : "rejectattr") : (keep ? "select" : "reject");
  Array items = require_iterable(input, filter);
  size_t first_test_arg = by_attribute ? 1 : 0;
  std::string attr;
  if (by_attribute) attr = require_string(args.get(0, "attribute"), filter + " attribute");
  Value test = args.positional.size() > first_test_arg ? args.positional[first_test_arg] : Value();
  CallArgs test_args = shift_args(args, first_test_arg + 1);
  test_args.keyword.clear();
  Array out;
  for (const auto& item : items) {
    Value subject = by_attribute ? attribute_path(item, attr) : item;
    bool r = test.is_undefined() ? subject.truthy()
                                 : apply_test(ev, require_string(test, filter + " test name"), subject, test_args);
    if (r == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value length_of(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return Value::integer(0);
    case Kind::String: return Value::integer(static_cast<int64_t>(utf8_length(v.s)));
    case Kind::Array: return Value::integer(static_cast<int64_t>(v.array->items.size()));
    case Kind::Object:
      if (!v.object->is_namespace) return Value::integer(static_cast<int64_t>(v.object->entries.size()));
      [[fallthrough]];
    default: fail("object of type '" + v.type_name() + "' has no len()");
  }
}

Value tojson(const Value& input, CallArgs& args) {
  JsonDumpOptions o;
  Value ensure_ascii = args.get(0, "ensure_ascii");
  Value indent = args.get(1, "indent");
  Value separators = args.get(2, "separators");
  Value sort_keys = args.get(3, "sort_keys");
  args.expect_at_most(4, {"ensure_ascii", "indent", "separators", "sort_keys"}, "tojson");
  o.ensure_ascii = ensure_ascii.truthy();
  o.sort_keys = sort_keys.truthy();
  if (!indent.is_undefined() && !indent.is_none()) {
    if (indent.is_string()) {
      o.indent_text = indent.s;
    } else {
      int64_t n = require_int(indent, "indent");
      if (n > 64) fail("tojson indent too large");
      o.indent_text = std::string(n > 0 ? static_cast<size_t>(n) : 0, ' ');
    }
    o.indent = 1;
    o.item_separator = ",";
  }
  if (!separators.is_undefined() && !separators.is_none()) {
    if (!separators.is_array() || separators.array->items.size() != 2) fail("tojson separators must be a pair of strings");
    o.item_separator = require_string(separators.array->items[0], "item separator");
    o.key_separator = require_string(separators.array->items[1], "key separator");
  }
  return Value::string(json_dumps(input, o));
}

Value to_int(const Value& v, const Value& dflt, int base) {
  Value fallback = dflt.is_undefined() ? Value::integer(0) : dflt;
  if (v.is_int_like()) return Value::integer(v.as_int());
  if (v.kind == Kind::Float) {
    if (!std::isfinite(v.f)) return fallback;
    return Value::integer(static_cast<int64_t>(std::trunc(v.f)));
  }
  if (v.is_string()) {
    std::string t = py_strip(v.s, std::nullopt, true, true);
    std::string digits;
    for (char c : t)
      if (c != '_') digits += c;
    if (!digits.empty()) {
      char* end = nullptr;
      errno = 0;
      long long r = std::strtoll(digits.c_str(), &end, base);
      if (end && *end == '\0' && errno == 0) return Value::integer(r);
      double d = std::strtod(digits.c_str(), &end);
      if (end && *end == '\0' && std::isfinite(d)) return Value::integer(static_cast<int64_t>(std::trunc(d)));
    }
  }
  return fallback;
}

Value to_float(const Value& v, const Value& dflt) {
  Value fallback = dflt.is_undefined() ? Value::number(0.0) : dflt;
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    std::string t = py_strip(v.s, std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && end && *end == '\0') return Value::number(d);
  }
  return fallback;
}

Value min_max(const Value& input, CallArgs& args, bool want_max) {
  Array items = require_iterable(input, want_max ? "max" : "min");
  bool cs = args.get(0, "case_sensitive").truthy();
  Value attr = args.get(1, "attribute");
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  auto key = [&](const Value& v) { return sort_key(attr.is_undefined() ? v : attribute_path(v, to_str(attr)), cs); };
  for (size_t k = 1; k < items.size(); ++k) {
    int c = compare_values(key(items[k]), key(items[best]));
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}

}  // namespace

// ---------------------------------------------------------------- tests

bool apply_test(Evaluator& ev, const std::string& name, const Value& v, CallArgs& args) {
  (void)ev;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_array() || v.is_mapping();
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_array() || v.is_mapping();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == Kind::Int;
  if (name == "float") return v.kind == Kind::Float;
  if (name == "boolean") return v.kind == Kind::Bool;
  if (name == "true") return v.kind == Kind::Bool && v.b;
  if (name == "false") return v.kind == Kind::Bool && !v.b;
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return false;
  if (name == "odd" || name == "even") {
    int64_t n = require_int(v, name);
    return (n % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    int64_t d = require_int(args.get(0, "num"), "divisibleby");
    if (d == 0) fail("integer division or modulo by zero");
    return require_int(v, "divisibleby") % d == 0;
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return name == "lower" ? py_lower(v.s) == v.s : py_upper(v.s) == v.s;
  }
  Value other = args.get(0, "other");
  if (name == "equalto" || name == "eq" || name == "==") return values_equal(v, other);
  if (name == "ne" || name == "!=") return !values_equal(v, other);
  if (name == "sameas") {
    if (v.kind != other.kind) return false;
    if (v.is_array()) return v.array == other.array;
    if (v.is_object()) return v.object == other.object;
    return values_equal(v, other);
  }
  if (name == "in") return contains(other, v);
  if (name == "lt" || name == "<" || name == "lessthan") return compare_values(v, other) < 0;
  if (name == "le" || name == "<=") return compare_values(v, other) <= 0;
  if (name == "gt" || name == ">" || name == "greaterthan") return compare_values(v, other) > 0;
  if (name == "ge" || name == ">=") return compare_values(v, other) >= 0;
  if (name == "filter" || name == "test") return false;
  fail("No test named '" + name + "'.");
}

// ---------------------------------------------------------------- filters

Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args) {
  const Value& v = input;
  if (name == "safe") return v;
  if (name == "tojson") return tojson(v, args);
  if (name == "trim" || name == "strip") {
    Value chars = args.get(0, "chars");
    std::optional<std::u32string> set;
    if (!chars.is_undefined() && !chars.is_none()) set = utf8_decode(require_string(chars, "trim chars"));
    return Value::string(py_strip(to_str(v), set, true, true));
  }
  if (name == "length" || name == "count") return length_of(v);
  if (name == "string") return Value::string(to_str(v));
  if (name == "upper") return Value::string(py_upper(to_str(v)));
  if (name == "lower") return Value::string(py_lower(to_str(v)));
  if (name == "title") return Value::string(jinja_title(to_str(v)));
  if (name == "capitalize") return Value::string(py_capitalize(to_str(v)));
  if (name == "escape" || name == "e" || name == "forceescape") return Value::string(html_escape(to_str(v)));
  if (name == "wordcount") return Value::integer(word_count(to_str(v)));
  if (name == "replace") {
    Value count = args.get(2, "count");
    return Value::string(py_replace(to_str(v), to_str(args.get(0, "old")), to_str(args.get(1, "new")),
                                    count.is_undefined() || count.is_none() ? -1 : require_int(count, "count")));
  }
  if (name == "default" || name == "d") {
    Value dflt = args.get(0, "default_value");
    if (dflt.is_undefined()) dflt = Value::string("");
    bool boolean = args.get(1, "boolean").truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
  }
  if (name == "join") {
    Value sep = args.get(0, "d");
    Value attr = args.get(1, "attribute");
    std::string out;
    bool first = true;
    for (const auto& item : require_iterable(v, "join")) {
      if (!first) out += sep.is_undefined() ? "" : to_str(sep);
      first = false;
      out += to_str(attr.is_undefined() ? item : attribute_path(item, to_str(attr)));
      ev.check_output(out);
    }
    return Value::string(std::move(out));
  }
  if (name == "first") {
    Array items = require_iterable(v, "first");
    if (items.empty()) return Value::undefined("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") {
    Array items = require_iterable(v, "last");
    if (items.empty()) return Value::undefined("No last item, sequence was empty.");
    return items.back();
  }
  if (name == "list") return Value::list(require_iterable(v, "list"));
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string s = utf8_decode(v.s);
      std::reverse(s.begin(), s.end());
      return Value::string(utf8_encode(s));
    }
    Array items = require_iterable(v, "reverse");
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_mapping()) fail("Can only get item pairs from a mapping.");
    Array out;
    for (const auto& [k, e] : v.object->entries) out.push_back(Value::tuple({Value::string(k), e}));
    return Value::list(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is_mapping()) fail("You can only sort by either \"key\" or \"value\" of a mapping.");
    bool cs = args.get(0, "case_sensitive").truthy();
    Value by = args.get(1, "by");
    bool by_value = by.is_string() && by.s == "value";
    bool reverse = args.get(2, "reverse").truthy();
    Array out;
    for (const auto& [k, e] : v.object->entries) out.push_back(Value::tuple({Value::string(k), e}));
    std::stable_sort(out.begin(), out.end(), [&](const Value& a, const Value& b) {
      size_t i = by_value ? 1 : 0;
      int c = compare_values(sort_key(a.array->items[i], cs), sort_key(b.array->items[i], cs));
      return reverse ? c > 0 : c < 0;
    });
    return Value::list(std::move(out));
  }
  if (name == "sort") {
    Array items = require_iterable(v, "sort");
    bool reverse = args.get(0, "reverse").truthy();
    bool cs = args.get(1, "case_sensitive").truthy();
    Value attr = args.get(2, "attribute");
    auto key = [&](const Value& x) { return sort_key(attr.is_undefined() ? x : attribute_path(x, to_str(attr)), cs); };
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      int c = compare_values(key(a), key(b));
      return reverse ? c > 0 : c < 0;
    });
    return Value::list(std::move(items));
  }
  if (name == "unique") {
    bool cs = args.get(0, "case_sensitive").truthy();
    Value attr = args.get(1, "attribute");
    Array out, seen;
    for (const auto& item : require_iterable(v, "unique")) {
      Value key = sort_key(attr.is_undefined() ? item : attribute_path(item, to_str(attr)), cs);
      bool dup = false;
      for (const auto& s : seen) dup = dup || values_equal(s, key);
      if (!dup) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "map") {
    Array items = require_iterable(v, "map");
    Array out;
    Value attr = args.get(99, "attribute");
    if (!attr.is_undefined() && args.positional.empty()) {
      Value dflt = args.get(99, "default");
      for (const auto& item : items) {
        Value r = attribute_path(item, to_str(attr));
        out.push_back(r.is_undefined() && !dflt.is_undefined() ? dflt : r);
      }
      return Value::list(std::move(out));
    }
    std::string filter = require_string(args.get(0, "filter"), "map filter name");
    CallArgs rest = shift_args(args, 1);
    for (const auto& item : items) out.push_back(apply_filter(ev, filter, item, rest));
    return Value::list(std::move(out));
  }
  if (name == "select") return select_like(ev, v, args, false, true);
  if (name == "reject") return select_like(ev, v, args, false, false);
  if (name == "selectattr") return select_like(ev, v, args, true, true);
  if (name == "rejectattr") return select_like(ev, v, args, true, false);
  if (name == "batch") {
    int64_t n = require_int(args.get(0, "linecount"), "batch size");
    if (n <= 0) fail("batch size must be positive");
    Value fill = args.get(1, "fill_with");
    Array out, cur;
    for (const auto& item : require_iterable(v, "batch")) {
      cur.push_back(item);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (!fill.is_undefined() && !fill.is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(fill);
      out.push_back(Value::list(std::move(cur)));
    }
    return Value::list(std::move(out));
  }
  if (name == "int") {
    Value base = args.get(1, "base");
    return to_int(v, args.get(0, "default"), base.is_undefined() ? 10 : static_cast<int>(require_int(base, "base")));
  }
  if (name == "float") return to_float(v, args.get(0, "default"));
  if (name == "abs") {
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    if (v.is_int_like()) return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    fail("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "round") {
    int64_t precision = args.has(0, "precision") ? require_int(args.get(0, "precision"), "precision") : 0;
    Value method = args.get(1, "method");
    std::string m = method.is_undefined() ? "common" : to_str(method);
    if (!v.is_number()) fail("round() needs a number, got " + v.type_name());
    double scale = std::pow(10.0, static_cast<double>(precision));
    double x = v.as_double() * scale;
    double r = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : round_half_even(x);
    if (m == "common" && v.kind != Kind::Float) return Value::integer(v.as_int());
    return Value::number(r / scale);
  }
  if (name == "indent") return Value::string(jinja_indent(to_str(v), args));
  if (name == "center") {
    int64_t width = args.has(0, "width") ? require_int(args.get(0, "width"), "width") : 80;
    CallArgs a;
    a.positional.push_back(Value::integer(width));
    Value s = Value::string(to_str(v));
    return ev.call(get_attribute(s, "center"), a);
  }
  if (name == "sum") {
    Value attr = args.get(0, "attribute");
    Value total = args.has(1, "start") ? args.get(1, "start") : Value::integer(0);
    for (const auto& item : require_iterable(v, "sum")) {
      Value x = attr.is_undefined() ? item : attribute_path(item, to_str(attr));
      if (!x.is_number() || !total.is_number()) fail("unsupported operand type(s) for +: '" + total.type_name() + "' and '" + x.type_name() + "'");
      if (x.kind == Kind::Float || total.kind == Kind::Float) total = Value::number(total.as_double() + x.as_double());
      else total = Value::integer(total.as_int() + x.as_int());
    }
    return total;
  }
  if (name == "max") return min_max(v, args, true);
  if (name == "min") return min_max(v, args, false);
  if (name == "attr") return get_attribute(v, to_str(args.get(0, "name")));
  if (name == "pprint") return Value::string(to_repr(v));
  if (name == "format") {
    CallArgs a = args;
    return Value::string(py_percent_format(to_str(v), a));
  }
  fail("No filter named '" + name + "'.");
}

// ---------------------------------------------------------------- globals

Value make_globals(const nlohmann::ordered_json& variables) {
  Value g = Value::dict();
  auto& e = *g.object;
  e.set("range", Value::callable("range", [](CallArgs& args, Evaluator& ev) {
          int64_t start = 0, stop, step = 1;
          if (args.positional.empty()) fail("range expected at least 1 argument, got 0");
          if (args.positional.size() == 1) {
            stop = require_int(args.positional[0], "range");
          } else {
            start = require_int(args.positional[0], "range");
            stop = require_int(args.positional[1], "range");
            if (args.positional.size() > 2) step = require_int(args.positional[2], "range");
          }
          if (step == 0) fail("range() arg 3 must not be zero");
          Array out;
          for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
            ev.count_iteration();
            out.push_back(Value::integer(k));
          }
          return Value::list(std::move(out));
        }));
  e.set("namespace", Value::callable("namespace", [](CallArgs& args, Evaluator&) {
          Value ns = Value::dict();
          ns.object->is_namespace = true;
          for (const auto& p : args.positional) {
            if (!p.is_mapping()) fail("namespace() positional argument must be a mapping");
            for (const auto& [k, v] : p.object->entries) ns.object->set(k, v);
          }
          for (const auto& [k, v] : args.keyword) ns.object->set(k, v);
          return ns;
        }));
  e.set("dict", Value::callable("dict", [](CallArgs& args, Evaluator&) {
          Value d = Value::dict();
          for (const auto& p : args.positional) {
            if (!p.is_mapping()) fail("dict() positional argument must be a mapping");
            for (const auto& [k, v] : p.object->entries) d.object->set(k, v);
          }
          for (const auto& [k, v] : args.keyword) d.object->set(k, v);
          return d;
        }));
  e.set("joiner", Value::callable("joiner", [](CallArgs& args, Evaluator&) {
          Value sep = args.get(0, "sep");
          std::string text = sep.is_undefined() ? ", " : to_str(sep);
          auto used = std::make_shared<bool>(false);
          return Value::callable("joiner", [text, used](CallArgs&, Evaluator&) {
            if (!*used) {
              *used = true;
              return Value::string("");
            }
            return Value::string(text);
          });
        }));
  e.set("raise_exception", Value::callable("raise_exception", [](CallArgs& args, Evaluator&) -> Value {
          fail(to_str(args.get(0, "message")));
        }));
  e.set("strftime_now", Value::callable("strftime_now", [](CallArgs& args, Evaluator& ev) {
          std::string fmt = require_string(args.get(0, "format"), "strftime_now format");
          std::tm tm = ev.now();
          char buf[512];
          size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
          if (n == 0 && !fmt.empty()) fail("strftime_now: format too long or invalid");
          return Value::string(std::string(buf, n));
        }));
  if (variables.is_object())
    for (auto it = variables.begin(); it != variables.end(); ++it) e.set(it.key(), Value::from_json(it.value()));
  return g;
}

}  // namespace nibble::jinja
