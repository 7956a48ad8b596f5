// Attribute and item access, iteration, `in`, and the Python str/dict/list
// methods chat templates call, with Python's semantics. Mutating list and
// dict methods are refused as ImmutableSandboxedEnvironment refuses them.
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

std::string require_string(const Value& v, const std::string& what) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_string()) fail(what + " must be str, not " + v.type_name());
  return v.s;
}

int64_t require_int(const Value& v, const std::string& what) {
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_int_like()) fail("'" + v.type_name() + "' object cannot be interpreted as an integer (" + what + ")");
  return v.as_int();
}

namespace {

std::string describe_object(const Value& v) {
  if (v.is_none()) return "'None'";
  return "'" + v.type_name() + " object'";
}

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(describe_object(obj) + " has no attribute '" + name + "'");
}

Value bind_method(const Value& self, const std::string& name,
           std::function<Value(const Value&, CallArgs&, Evaluator&)> fn) {
  return Value::callable(name, [self, fn = std::move(fn)](CallArgs& args, Evaluator& ev) { return fn(self, args, ev); });
}

Value unsafe_method(const Value& obj, const std::string& name) {
  std::string type = obj.type_name();
  return Value::callable(name, [name, type](CallArgs&, Evaluator&) -> Value {
    fail("access to attribute '" + name + "' of '" + type + "' object is unsafe");
  });
}

// ---- str methods

std::optional<std::u32string> strip_chars(const CallArgs& args) {
  Value c = args.get(0, "chars");
  if (c.is_undefined() || c.is_none()) return std::nullopt;
  return utf8_decode(require_string(c, "strip arg"));
}

Value string_method(const Value& obj, const std::string& name) {
  static const std::unordered_set<std::string> known = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower", "title",
      "capitalize", "replace", "format", "find", "rfind", "index", "count", "join", "isdigit", "isalpha",
      "isalnum", "isspace", "islower", "isupper", "splitlines", "swapcase", "casefold", "isnumeric",
      "isdecimal", "removeprefix", "removesuffix", "center", "ljust", "rjust", "zfill", "partition"};
  if (!known.count(name)) return missing_attribute(obj, name);
  return bind_method(obj, name, [name](const Value& self, CallArgs& args, Evaluator&) -> Value {
    const std::string& s = self.s;
    if (name == "strip") return Value::string(py_strip(s, strip_chars(args), true, true));
    if (name == "lstrip") return Value::string(py_strip(s, strip_chars(args), true, false));
    if (name == "rstrip") return Value::string(py_strip(s, strip_chars(args), false, true));
    if (name == "split" || name == "rsplit") {
      Value sep = args.get(0, "sep");
      Value maxsplit = args.get(1, "maxsplit");
      int64_t max = maxsplit.is_undefined() ? -1 : require_int(maxsplit, "maxsplit");
      std::optional<std::string> separator;
      if (!sep.is_undefined() && !sep.is_none()) separator = require_string(sep, "separator");
      Array parts;
      for (auto& p : py_split(s, separator, max, name == "rsplit")) parts.push_back(Value::string(std::move(p)));
      return Value::list(std::move(parts));
    }
    if (name == "startswith" || name == "endswith") {
      Value arg = args.get(0, "prefix");
      std::vector<std::string> options;
      if (arg.is_array()) {
        for (const auto& v : arg.array->items) options.push_back(require_string(v, name + " first arg"));
      } else {
        options.push_back(require_string(arg, name + " first arg"));
      }
      for (const auto& o : options) {
        if (o.size() > s.size()) continue;
        if (name == "startswith" ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0)
          return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "upper") return Value::string(py_upper(s));
    if (name == "lower" || name == "casefold") return Value::string(py_lower(s));
    if (name == "title") return Value::string(py_title(s));
    if (name == "capitalize") return Value::string(py_capitalize(s));
    if (name == "swapcase") return Value::string(py_swapcase(s));
    if (name == "replace") {
      Value count = args.get(2, "count");
      return Value::string(py_replace(s, require_string(args.get(0, "old"), "replace() argument 1"),
                                      require_string(args.get(1, "new"), "replace() argument 2"),
                                      count.is_undefined() ? -1 : require_int(count, "count")));
    }
    if (name == "format") return Value::string(py_format(s, args));
    if (name == "find" || name == "rfind" || name == "index") {
      const std::string sub = require_string(args.get(0, "sub"), name + " argument");
      size_t pos = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (pos == std::string::npos) {
        if (name == "index") fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(static_cast<int64_t>(utf8_length(s.substr(0, pos))));
    }
    if (name == "count") {
      const std::string sub = require_string(args.get(0, "sub"), "count argument");
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s) + 1));
      int64_t n = 0;
      for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const auto& item : iterate(args.get(0, "iterable"))) {
        if (!first) out += s;
        first = false;
        out += require_string(item, "sequence item");
      }
      return Value::string(std::move(out));
    }
    if (name == "splitlines") {
      Array parts;
      for (auto& p : py_splitlines(s, args.get(0, "keepends").truthy())) parts.push_back(Value::string(std::move(p)));
      return Value::list(std::move(parts));
    }
    if (name == "removeprefix") {
      const std::string p = require_string(args.get(0, "prefix"), "removeprefix argument");
      return Value::string(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
    }
    if (name == "removesuffix") {
      const std::string p = require_string(args.get(0, "suffix"), "removesuffix argument");
      bool ends = p.size() <= s.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
      return Value::string(ends && !p.empty() ? s.substr(0, s.size() - p.size()) : s);
    }
    if (name == "partition") {
      const std::string sep = require_string(args.get(0, "sep"), "partition argument");
      if (sep.empty()) fail("empty separator");
      size_t pos = s.find(sep);
      if (pos == std::string::npos) return Value::tuple({Value::string(s), Value::string(""), Value::string("")});
      return Value::tuple({Value::string(s.substr(0, pos)), Value::string(sep), Value::string(s.substr(pos + sep.size()))});
    }
    if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
      int64_t width = require_int(args.get(0, "width"), "width");
      size_t len = utf8_length(s);
      if (width <= static_cast<int64_t>(len)) return Value::string(s);
      if (width > 1 << 20) fail("sandbox limit: padding too large");
      size_t pad = static_cast<size_t>(width) - len;
      if (name == "zfill") {
        bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
        return Value::string((sign ? s.substr(0, 1) : "") + std::string(pad, '0') + (sign ? s.substr(1) : s));
      }
      Value fill = args.get(1, "fillchar");
      std::string f = fill.is_undefined() ? " " : require_string(fill, "fillchar");
      auto rep = [&](size_t n) {
        std::string r;
        for (size_t k = 0; k < n; ++k) r += f;
        return r;
      };
      if (name == "ljust") return Value::string(s + rep(pad));
      if (name == "rjust") return Value::string(rep(pad) + s);
      size_t left = pad / 2 + (pad & static_cast<size_t>(width) & 1);
      return Value::string(rep(left) + s + rep(pad - left));
    }
    // is* predicates
    return Value::boolean(py_is(s, name));
  });
}

// ---- dict / list methods

Value dict_method(const Value& obj, const std::string& name) {
  if (name == "items" || name == "keys" || name == "values") {
    return bind_method(obj, name, [name](const Value& self, CallArgs&, Evaluator&) {
      Array out;
      for (const auto& [k, v] : self.object->entries) {
        if (name == "items") out.push_back(Value::tuple({Value::string(k), v}));
        else if (name == "keys") out.push_back(Value::string(k));
        else out.push_back(v);
      }
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return bind_method(obj, name, [](const Value& self, CallArgs& args, Evaluator&) {
      Value key = args.get(0, "key");
      if (key.is_string())
        if (const Value* v = self.object->find(key.s)) return *v;
      Value dflt = args.get(1, "default");
      return dflt.is_undefined() ? Value::none() : dflt;
    });
  }
  if (name == "copy") return bind_method(obj, name, [](const Value& self, CallArgs&, Evaluator&) {
      return Value::dict(self.object->entries);
    });
  if (name == "pop" || name == "update" || name == "clear" || name == "setdefault" || name == "popitem")
    return unsafe_method(obj, name);
  return Value();
}

Value list_method(const Value& obj, const std::string& name) {
  if (name == "count") return bind_method(obj, name, [](const Value& self, CallArgs& args, Evaluator&) {
      Value x = args.get(0, "x");
      int64_t n = 0;
      for (const auto& v : self.array->items) n += values_equal(v, x);
      return Value::integer(n);
    });
  if (name == "index") return bind_method(obj, name, [](const Value& self, CallArgs& args, Evaluator&) {
      Value x = args.get(0, "x");
      const auto& items = self.array->items;
      for (size_t k = 0; k < items.size(); ++k)
        if (values_equal(items[k], x)) return Value::integer(static_cast<int64_t>(k));
      fail(to_repr(x) + " is not in list");
    });
  if (name == "copy" && !obj.array->is_tuple) return bind_method(obj, name, [](const Value& self, CallArgs&, Evaluator&) {
      return Value::list(self.array->items);
    });
  if (!obj.array->is_tuple && (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
                               name == "remove" || name == "reverse" || name == "sort" || name == "clear"))
    return unsafe_method(obj, name);
  return missing_attribute(obj, name);
}

}  // namespace

// ---------------------------------------------------------------- attributes

Value get_attribute(const Value& object, const std::string& name) {
  switch (object.kind) {
    case Kind::Undefined:
      undefined_error(object);
    case Kind::Object: {
      if (object.object->is_namespace) {
        if (const Value* v = object.object->find(name)) return *v;
        return missing_attribute(object, name);
      }
      Value method = dict_method(object, name);
      if (!method.is_undefined()) return method;
      if (const Value* v = object.object->find(name)) return *v;
      return missing_attribute(object, name);
    }
    case Kind::String:
      return string_method(object, name);
    case Kind::Array:
      return list_method(object, name);
    default:
      return missing_attribute(object, name);
  }
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind) {
    case Kind::Undefined:
      undefined_error(object);
    case Kind::Object:
      if (key.is_string()) {
        if (const Value* v = object.object->find(key.s)) return *v;
        if (!object.object->is_namespace) {
          Value method = dict_method(object, key.s);
          if (!method.is_undefined()) return method;
        }
        return missing_attribute(object, key.s);
      }
      return Value::undefined(describe_object(object) + " has no attribute " + to_repr(key));
    case Kind::Array:
    case Kind::String: {
      if (key.is_string()) return get_attribute(object, key.s);
      if (!key.is_int_like()) return Value::undefined(describe_object(object) + " has no attribute " + to_repr(key));
      int64_t idx = key.as_int();
      if (object.is_array()) {
        int64_t n = static_cast<int64_t>(object.array->items.size());
        if (idx < 0) idx += n;
        if (idx < 0 || idx >= n) return Value::undefined(describe_object(object) + " has no element " + std::to_string(key.as_int()));
        return object.array->items[static_cast<size_t>(idx)];
      }
      std::u32string chars = utf8_decode(object.s);
      int64_t n = static_cast<int64_t>(chars.size());
      if (idx < 0) idx += n;
      if (idx < 0 || idx >= n) return Value::undefined(describe_object(object) + " has no element " + std::to_string(key.as_int()));
      return Value::string(utf8_encode(std::u32string(1, chars[static_cast<size_t>(idx)])));
    }
    default:
      return Value::undefined(describe_object(object) + " has no attribute " + to_repr(key));
  }
}

Array iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Array:
      return v.array->items;
    case Kind::Object: {
      if (v.object->is_namespace) fail("'Namespace' object is not iterable");
      Array keys;
      for (const auto& [k, e] : v.object->entries) keys.push_back(Value::string(k));
      return keys;
    }
    case Kind::String: {
      Array chars;
      for (char32_t c : utf8_decode(v.s)) chars.push_back(Value::string(utf8_encode(std::u32string(1, c))));
      return chars;
    }
    case Kind::Undefined:
      return {};
    default:
      fail("'" + v.type_name() + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Undefined:
      return false;
    case Kind::String:
      if (item.is_undefined()) undefined_error(item);
      if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + item.type_name());
      return container.s.find(item.s) != std::string::npos;
    case Kind::Array:
      for (const auto& v : container.array->items)
        if (values_equal(v, item)) return true;
      return false;
    case Kind::Object:
      if (container.object->is_namespace) fail("argument of type 'Namespace' is not iterable");
      return item.is_string() && container.object->find(item.s) != nullptr;
    default:
      fail("argument of type '" + container.type_name() + "' is not iterable");
  }
}

}  // namespace nibble::jinja
