#pragma once
// Parses a token stream into a Program, following Jinja2's grammar and
// operator precedence. Throws nibble::Error with line and column.
#include <memory>
#include <string_view>

#include "jinja_ast.h"

namespace nibble::jinja {

std::shared_ptr<const Program> parse_template(std::string_view source);

}  // namespace nibble::jinja
