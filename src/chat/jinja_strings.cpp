#include "jinja_strings.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include <utf8proc.h>

#include "jinja_error.h"

namespace nibble::jinja {
namespace {

bool is_cased(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool is_lower_cp(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_LL; }
bool is_upper_cp(char32_t c) {
  auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT;
}
char32_t to_upper_cp(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_lower_cp(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t to_title_cp(char32_t c) {
  if (c < 0x80) return to_upper_cp(c);
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}
bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

template <typename F>
std::string map_cps(const std::string& s, F f) {
  std::u32string cps = utf8_decode(s);
  for (auto& c : cps) c = f(c);
  return utf8_encode(cps);
}

std::string format_value(const Value& v, char conversion, const std::string& spec) {
  std::string text = conversion == 'r' ? to_repr(v) : to_str(v);
  if (spec.empty()) return text;
  // Minimal format-spec support: [[fill]align][width][.precision][type] for
  // the common cases templates use.
  size_t k = 0;
  char fill = ' ', align = 0;
  if (spec.size() >= 2 && (spec[1] == '<' || spec[1] == '>' || spec[1] == '^')) {
    fill = spec[0];
    align = spec[1];
    k = 2;
  } else if (!spec.empty() && (spec[0] == '<' || spec[0] == '>' || spec[0] == '^')) {
    align = spec[0];
    k = 1;
  }
  if (!align && k < spec.size() && spec[k] == '0' && v.is_number()) {
    fill = '0';
    align = '=';
    ++k;
  }
  size_t width = 0;
  while (k < spec.size() && spec[k] >= '0' && spec[k] <= '9') width = width * 10 + static_cast<size_t>(spec[k++] - '0');
  int precision = -1;
  if (k < spec.size() && spec[k] == '.') {
    precision = 0;
    ++k;
    while (k < spec.size() && spec[k] >= '0' && spec[k] <= '9') precision = precision * 10 + (spec[k++] - '0');
  }
  char type = k < spec.size() ? spec[k++] : 0;
  if (k != spec.size()) fail("unsupported format spec '" + spec + "'");
  if (type == 'f' || (precision >= 0 && v.is_number())) {
    if (!v.is_number()) fail("format spec '" + spec + "' needs a number");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision < 0 ? 6 : precision, v.as_double());
    text = buf;
    if (!align) align = '>';
  } else if (type == 'd') {
    if (!v.is_int_like()) fail("format spec '" + spec + "' needs an integer");
    text = std::to_string(v.as_int());
    if (!align) align = '>';
  } else if (type && type != 's') {
    fail("unsupported format spec '" + spec + "'");
  }
  if (width > 4096) fail("format width too large");
  size_t len = utf8_length(text);
  if (len < width) {
    size_t pad = width - len;
    if (!align) align = v.is_number() ? '>' : '<';
    if (align == '=') {
      bool sign = !text.empty() && (text[0] == '-' || text[0] == '+');
      text = (sign ? text.substr(0, 1) : "") + std::string(pad, fill) + (sign ? text.substr(1) : text);
    } else if (align == '<') text += std::string(pad, fill);
    else if (align == '>') text = std::string(pad, fill) + text;
    else text = std::string(pad / 2, fill) + text + std::string(pad - pad / 2, fill);
  }
  return text;
}

}  // namespace



std::string py_strip(const std::string& s, const std::optional<std::u32string>& chars, bool left, bool right) {
  std::u32string cps = utf8_decode(s);
  auto strip_it = [&](char32_t c) {
    return chars ? chars->find(c) != std::u32string::npos : is_py_space(c);
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  if (b == 0 && e == cps.size()) return s;
  return utf8_encode(cps.substr(b, e - b));
}

std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) fail("empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        size_t pos = s.find(*sep, start);
        if (pos == std::string::npos) break;
        out.push_back(s.substr(start, pos - start));
        start = pos + sep->size();
      }
      out.push_back(s.substr(start));
      return out;
    }
    size_t end = s.size();
    std::vector<std::string> rev;
    while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t pos = s.rfind(*sep, end - sep->size());
      if (pos == std::string::npos) break;
      rev.push_back(s.substr(pos + sep->size(), end - pos - sep->size()));
      end = pos;
    }
    rev.push_back(s.substr(0, end));
    return std::vector<std::string>(rev.rbegin(), rev.rend());
  }
  // Whitespace split: runs of whitespace separate, empty strings dropped.
  std::u32string cps = utf8_decode(s);
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t k = 0, n = cps.size();
    while (k < n) {
      while (k < n && is_py_space(cps[k])) ++k;
      if (k >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t e = n;
        while (e > k && is_py_space(cps[e - 1])) --e;
        parts.push_back(cps.substr(k, e - k));
        break;
      }
      size_t b = k;
      while (k < n && !is_py_space(cps[k])) ++k;
      parts.push_back(cps.substr(b, k - b));
    }
  } else {
    size_t e = cps.size();
    std::vector<std::u32string> rev;
    while (e > 0) {
      while (e > 0 && is_py_space(cps[e - 1])) --e;
      if (e == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) == maxsplit) {
        size_t b = 0;
        while (b < e && is_py_space(cps[b])) ++b;
        rev.push_back(cps.substr(b, e - b));
        break;
      }
      size_t b = e;
      while (b > 0 && !is_py_space(cps[b - 1])) --b;
      rev.push_back(cps.substr(b, e - b));
      e = b;
    }
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.push_back(utf8_encode(p));
  return out;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  std::u32string cps = utf8_decode(s);
  std::vector<std::string> out;
  size_t start = 0, k = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
  };
  while (k < cps.size()) {
    if (is_break(cps[k])) {
      size_t end = k;
      size_t next = k + 1;
      if (cps[k] == '\r' && next < cps.size() && cps[next] == '\n') ++next;
      out.push_back(utf8_encode(cps.substr(start, (keepends ? next : end) - start)));
      start = k = next;
    } else {
      ++k;
    }
  }
  if (start < cps.size()) out.push_back(utf8_encode(cps.substr(start)));
  return out;
}

std::string py_upper(const std::string& s) {
  if (is_ascii(s)) {
    std::string r = s;
    for (auto& c : r)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    return r;
  }
  return map_cps(s, to_upper_cp);
}

std::string py_lower(const std::string& s) {
  if (is_ascii(s)) {
    std::string r = s;
    for (auto& c : r)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return r;
  }
  return map_cps(s, to_lower_cp);
}

std::string py_swapcase(const std::string& s) {
  return map_cps(s, [](char32_t c) { return is_upper_cp(c) ? to_lower_cp(c) : is_lower_cp(c) ? to_upper_cp(c) : c; });
}

std::string py_title(const std::string& s) {
  std::u32string cps = utf8_decode(s);
  bool prev_cased = false;
  for (auto& c : cps) {
    bool cased = is_cased(c);
    c = prev_cased ? to_lower_cp(c) : to_title_cp(c);
    prev_cased = cased;
  }
  return utf8_encode(cps);
}

std::string py_capitalize(const std::string& s) {
  std::u32string cps = utf8_decode(s);
  for (size_t k = 0; k < cps.size(); ++k) cps[k] = k == 0 ? to_title_cp(cps[k]) : to_lower_cp(cps[k]);
  return utf8_encode(cps);
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string cps = utf8_decode(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (k < cps.size()) out += utf8_encode(std::u32string(1, cps[k]));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t pos = s.find(old, start);
    if (pos == std::string::npos) break;
    out.append(s, start, pos - start);
    out += repl;
    start = pos + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string py_format(const std::string& s, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    char c = s[k];
    if (c == '}') {
      if (k + 1 < s.size() && s[k + 1] == '}') {
        out += '}';
        ++k;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (k + 1 < s.size() && s[k + 1] == '{') {
      out += '{';
      ++k;
      continue;
    }
    size_t close = s.find('}', k);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = s.substr(k + 1, close - k - 1);
    k = close;
    std::string spec;
    char conversion = 's';
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      if (bang + 2 != field.size()) fail("invalid conversion in format string");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    Value v;
    if (field.empty()) {
      if (auto_index >= args.positional.size()) fail("Replacement index " + std::to_string(auto_index) + " out of range for positional args tuple");
      v = args.positional[auto_index++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t idx = 0;
      auto res = std::from_chars(field.data(), field.data() + field.size(), idx);
      if (res.ec != std::errc() || idx >= args.positional.size()) fail("Replacement index " + field + " out of range for positional args tuple");
      v = args.positional[idx];
    } else {
      bool found = false;
      for (const auto& [name, value] : args.keyword)
        if (name == field) {
          v = value;
          found = true;
        }
      if (!found) fail("KeyError: '" + field + "'");
    }
    out += format_value(v, conversion, spec);
  }
  return out;
}

std::string py_percent_format(const std::string& s, const CallArgs& args) {
  std::string out;
  size_t next = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '%') {
      out += s[k];
      continue;
    }
    if (k + 1 >= s.size()) fail("incomplete format");
    char t = s[++k];
    if (t == '%') {
      out += '%';
      continue;
    }
    if (next >= args.positional.size()) fail("not enough arguments for format string");
    const Value& v = args.positional[next++];
    if (t == 's') out += to_str(v);
    else if (t == 'r') out += to_repr(v);
    else if (t == 'd' || t == 'i') {
      if (!v.is_number()) fail("%d format: a real number is required, not " + v.type_name());
      out += std::to_string(v.kind == Kind::Float ? static_cast<int64_t>(v.f) : v.as_int());
    } else {
      fail(std::string("unsupported format character '") + t + "'");
    }
  }
  if (next < args.positional.size()) fail("not all arguments converted during string formatting");
  return out;
}

bool py_is(const std::string& s, const std::string& predicate) {
  std::u32string cps = utf8_decode(s);
  if (cps.empty()) return false;
  auto all = [&](auto f) { return std::all_of(cps.begin(), cps.end(), f); };
  auto cat = [](char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); };
  auto alpha = [&](char32_t c) {
    auto k = cat(c);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
  };
  auto digit = [&](char32_t c) { return cat(c) == UTF8PROC_CATEGORY_ND; };
  auto numeric = [&](char32_t c) {
    auto k = cat(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
  };
  if (predicate == "isdigit" || predicate == "isdecimal") return all(digit);
  if (predicate == "isnumeric") return all(numeric);
  if (predicate == "isalpha") return all(alpha);
  if (predicate == "isalnum") return all([&](char32_t c) { return alpha(c) || numeric(c); });
  if (predicate == "isspace") return all([](char32_t c) { return is_py_space(c); });
  bool any_cased = std::any_of(cps.begin(), cps.end(), [](char32_t c) { return is_cased(c); });
  if (predicate == "islower") return any_cased && !std::any_of(cps.begin(), cps.end(), is_upper_cp);
  if (predicate == "isupper") return any_cased && !std::any_of(cps.begin(), cps.end(), is_lower_cp);
  fail("unknown string method '" + predicate + "'");
}

std::string jinja_title(const std::string& s) {
  // Jinja: re.split(r"([-\s({\[<]+)") then item[0].upper() + item[1:].lower().
  std::u32string cps = utf8_decode(s);
  auto is_sep = [](char32_t c) { return is_py_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  bool at_word_start = true;
  for (auto& c : cps) {
    if (is_sep(c)) {
      at_word_start = true;
      continue;
    }
    c = at_word_start ? to_upper_cp(c) : to_lower_cp(c);
    at_word_start = false;
  }
  return utf8_encode(cps);
}

int64_t word_count(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : utf8_decode(s)) {
    auto k = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    bool word = c == '_' || (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
                (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
    if (word && !in_word) ++n;
    in_word = word;
  }
  return n;
}

std::string jinja_indent(const std::string& s, const CallArgs& args) {
  Value width = args.get(0, "width");
  bool first = args.get(1, "first").truthy();
  bool blank = args.get(2, "blank").truthy();
  std::string indention;
  if (width.is_string()) {
    indention = width.s;
  } else if (width.is_undefined()) {
    indention = "    ";
  } else {
    if (!width.is_int_like()) fail("indent width must be an integer or a string");
    int64_t w = width.as_int();
    if (w > 4096) fail("indent width too large");
    indention = std::string(w > 0 ? static_cast<size_t>(w) : 0, ' ');
  }
  std::vector<std::string> lines = py_splitlines(s + "\n", false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + indention;
      rv += lines[k];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? lines[k] : indention + lines[k]);
  }
  if (first) rv = indention + rv;
  return rv;
}

}  // namespace nibble::jinja
