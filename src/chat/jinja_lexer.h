#pragma once
// Splits a template into tokens the way Jinja2's lexer does with the options
// transformers uses: trim_blocks and lstrip_blocks on, `-`/`+` whitespace
// control, comments dropped, `{% raw %}` blocks kept verbatim, newlines
// normalised to \n and one trailing newline removed.
#include <string>
#include <string_view>
#include <vector>

#include "jinja_error.h"

namespace nibble::jinja {

enum class TokenType { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
  TokenType type;
  std::string text;  // Data text, name, unescaped string literal, number or operator
  SourcePos pos;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws nibble::Error with line and column on malformed input.
std::vector<Token> tokenize(std::string_view source, const LexerOptions& options = {});

}  // namespace nibble::jinja
