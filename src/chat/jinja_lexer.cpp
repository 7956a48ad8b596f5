#include "jinja_lexer.h"

#include <cctype>

#include "jinja_value.h"
#include "nibble/core/error.h"

namespace nibble::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out += source[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const LexerOptions& options) : src_(std::move(src)), options_(options) {}

  std::vector<Token> run() {
    bool line_starting = true;
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t open = find_open(pos);
      std::string text = src_.substr(pos, (open == std::string::npos ? src_.size() : open) - pos);
      if (open == std::string::npos) {
        emit_data(text, pos);
        break;
      }
      char kind = src_[open + 1];
      char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && options_.lstrip_blocks && kind != '{') {
        size_t line_start = text.rfind('\n');
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        if (line_start > 0 || line_starting) {
          bool blank = true;
          for (size_t k = line_start; k < text.size(); ++k)
            if (!is_space(text[k]) || text[k] == '\n') blank = false;
          if (blank) text.resize(line_start);
        }
      }
      emit_data(text, pos);
      size_t body = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      size_t after;
      if (kind == '#') {
        after = lex_comment(open, body);
      } else {
        after = lex_tag(open, body, kind == '%');
      }
      line_starting = after > 0 && src_[after - 1] == '\n';
      pos = after;
    }
    tokens_.push_back({TokenType::End, "", position(src_.size())});
    return std::move(tokens_);
  }

 private:
  size_t find_open(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return std::string::npos;
  }

  SourcePos position(size_t offset) {
    // Line starts are found incrementally; offsets almost always grow.
    if (offset < line_cursor_) {
      line_ = 1;
      line_start_ = 0;
      line_cursor_ = 0;
    }
    while (line_cursor_ < offset && line_cursor_ < src_.size()) {
      if (src_[line_cursor_] == '\n') {
        ++line_;
        line_start_ = line_cursor_ + 1;
      }
      ++line_cursor_;
    }
    return {line_, static_cast<int>(offset - line_start_) + 1};
  }

  [[noreturn]] void error(size_t offset, const std::string& message) {
    throw Error(located(position(offset), message));
  }

  void emit_data(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back({TokenType::Data, text, position(offset)});
  }

  // After a closing `-%}` / `%}`: strip whitespace or the first newline.
  size_t after_close(size_t close_end, bool minus, bool block_like) {
    if (minus) {
      while (close_end < src_.size() && is_space(src_[close_end])) ++close_end;
    } else if (block_like && options_.trim_blocks && close_end < src_.size() && src_[close_end] == '\n') {
      ++close_end;
    }
    return close_end;
  }

  size_t lex_comment(size_t open, size_t body) {
    size_t close = src_.find("#}", body);
    if (close == std::string::npos) error(open, "missing end of comment tag");
    bool minus = close > body && src_[close - 1] == '-';
    return after_close(close + 2, minus, true);
  }

  size_t lex_tag(size_t open, size_t body, bool block) {
    tokens_.push_back({block ? TokenType::BlockBegin : TokenType::VariableBegin, "", position(open)});
    size_t first_token = tokens_.size();
    std::vector<char> brackets;
    size_t k = body;
    const char close_char = block ? '%' : '}';
    while (true) {
      while (k < src_.size() && is_space(src_[k])) ++k;
      if (k >= src_.size()) error(open, block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
      if (brackets.empty()) {
        bool minus = src_[k] == '-' && src_.compare(k + 1, 2, std::string{close_char, '}'}) == 0;
        if (minus || src_.compare(k, 2, std::string{close_char, '}'}) == 0) {
          tokens_.push_back({block ? TokenType::BlockEnd : TokenType::VariableEnd, "", position(k)});
          size_t close_end = k + (minus ? 3 : 2);
          close_end = after_close(close_end, minus, block);
          if (block && tokens_.size() == first_token + 2 && tokens_[first_token].type == TokenType::Name &&
              tokens_[first_token].text == "raw")
            return lex_raw(open, close_end);
          return close_end;
        }
      }
      k = lex_expression_token(k, brackets);
    }
  }

  // `{% raw %}...{% endraw %}`: the text between is data, untouched.
  size_t lex_raw(size_t open, size_t from) {
    tokens_.resize(tokens_.size() - 3);  // drop BlockBegin raw BlockEnd
    size_t k = from;
    while (true) {
      size_t tag = src_.find("{%", k);
      if (tag == std::string::npos) error(open, "missing end of raw directive");
      size_t p = tag + 2;
      bool minus_before = p < src_.size() && src_[p] == '-';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") == 0) {
        size_t q = p + 6;
        while (q < src_.size() && is_space(src_[q])) ++q;
        bool minus_after = q < src_.size() && src_[q] == '-';
        if (minus_after) ++q;
        if (src_.compare(q, 2, "%}") == 0) {
          std::string text = src_.substr(from, tag - from);
          if (minus_before) {
            while (!text.empty() && is_space(text.back())) text.pop_back();
          }
          emit_data(text, from);
          return after_close(q + 2, minus_after, true);
        }
      }
      k = tag + 2;
    }
  }

  size_t lex_expression_token(size_t k, std::vector<char>& brackets) {
    char c = src_[k];
    size_t start = k;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (k < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[k])) || src_[k] == '_')) ++k;
      tokens_.push_back({TokenType::Name, src_.substr(start, k - start), position(start)});
      return k;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(k);
    if (c == '\'' || c == '"') return lex_string(k);
    static const char* const two_char_ops[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : two_char_ops) {
      if (src_.compare(k, 2, op) == 0) {
        tokens_.push_back({TokenType::Operator, op, position(k)});
        return k + 2;
      }
    }
    static const std::string single_ops = "+-*/%~<>=.,:|()[]{}";
    if (single_ops.find(c) == std::string::npos) error(k, std::string("unexpected char '") + c + "'");
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(k, std::string("unexpected '") + c + "'");
      if (brackets.back() != c)
        error(k, std::string("unexpected '") + c + "', expected '" + brackets.back() + "'");
      brackets.pop_back();
    }
    tokens_.push_back({TokenType::Operator, std::string(1, c), position(k)});
    return k + 1;
  }

  size_t lex_number(size_t k) {
    size_t start = k;
    auto digits = [&] {
      while (k < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[k])) ||
                                 (src_[k] == '_' && k + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k + 1])))))
        ++k;
    };
    digits();
    bool is_float = false;
    if (k + 1 < src_.size() && src_[k] == '.' && std::isdigit(static_cast<unsigned char>(src_[k + 1]))) {
      is_float = true;
      ++k;
      digits();
    }
    if (k < src_.size() && (src_[k] == 'e' || src_[k] == 'E')) {
      size_t e = k + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_float = true;
        k = e;
        digits();
      }
    }
    std::string text;
    for (size_t m = start; m < k; ++m)
      if (src_[m] != '_') text += src_[m];
    tokens_.push_back({is_float ? TokenType::Float : TokenType::Integer, text, position(start)});
    return k;
  }

  size_t lex_string(size_t k) {
    size_t start = k;
    char quote = src_[k++];
    std::string out;
    while (true) {
      if (k >= src_.size()) error(start, "unexpected end of string");
      char c = src_[k];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++k;
        continue;
      }
      if (k + 1 >= src_.size()) error(start, "unexpected end of string");
      char e = src_[k + 1];
      k += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '0': out += '\0'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (k + n > src_.size()) error(start, "truncated \\" + std::string(1, e) + " escape");
          char32_t cp = 0;
          for (size_t m = 0; m < n; ++m) {
            char h = src_[k + m];
            if (!std::isxdigit(static_cast<unsigned char>(h))) error(start, "truncated \\" + std::string(1, e) + " escape");
            cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF) error(start, "illegal Unicode character");
          out += utf8_encode(std::u32string(1, cp));
          k += n;
          break;
        }
        default:
          out += '\\';
          out += e;
      }
    }
    tokens_.push_back({TokenType::String, out, position(start)});
    return k + 1;
  }

  std::string src_;
  LexerOptions options_;
  std::vector<Token> tokens_;
  int line_ = 1;
  size_t line_start_ = 0;
  size_t line_cursor_ = 0;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options) {
  return Lexer(normalize_newlines(source), options).run();
}

}  // namespace nibble::jinja
