#pragma once
// Python str semantics over UTF-8 strings (code points, Unicode whitespace and
// case mapping) and the string-shaped Jinja filters built on them.
#include <optional>
#include <string>
#include <vector>

#include "jinja_value.h"

namespace nibble::jinja {

// str.strip/lstrip/rstrip: `chars` absent means Unicode whitespace.
std::string py_strip(const std::string& s, const std::optional<std::u32string>& chars, bool left, bool right);
std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::vector<std::string> py_splitlines(const std::string& s, bool keepends);
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);
std::string py_capitalize(const std::string& s);
std::string py_swapcase(const std::string& s);
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
// str.format with {} / {0} / {name} fields, !r / !s conversions and simple specs.
std::string py_format(const std::string& s, const CallArgs& args);
// "%s" % args, for Jinja's format filter.
std::string py_percent_format(const std::string& s, const CallArgs& args);
// isdigit, isalpha, isalnum, isspace, islower, isupper, isnumeric, isdecimal.
bool py_is(const std::string& s, const std::string& predicate);

// Jinja's title filter (words start after whitespace, '-', '(', '{', '[', '<').
std::string jinja_title(const std::string& s);
int64_t word_count(const std::string& s);
// Jinja's indent(width=4, first=False, blank=False).
std::string jinja_indent(const std::string& s, const CallArgs& args);

}  // namespace nibble::jinja
