#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>

#include "nibble/core/error.h"

namespace nibble::tokenizer_detail {

namespace {

// Oniguruma's \s in Unicode mode is the White_Space property; PCRE2's (even with UCP)
// leaves out U+0085. Spelled out as class members so it also works inside [...].
constexpr std::string_view kWhiteSpaceMembers =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Oniguruma's \w is Unicode's Word class (Alphabetic, marks, decimal digits, connector
// punctuation, joiners); PCRE2 10.42's UCP \w leaves out the marks.
constexpr std::string_view kWordMembers = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

std::string Regex::translate(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char n = pattern[i + 1];
      if (n == 's') {
        if (in_class) {
          out.append(kWhiteSpaceMembers);
        } else {
          out.append("[").append(kWhiteSpaceMembers).append("]");
        }
      } else if (n == 'S' && !in_class) {
        out.append("[^").append(kWhiteSpaceMembers).append("]");
      } else if (n == 'w') {
        if (in_class) {
          out.append(kWordMembers);
        } else {
          out.append("[").append(kWordMembers).append("]");
        }
      } else if (n == 'W' && !in_class) {
        out.append("[^").append(kWordMembers).append("]");
      } else {
        out.push_back(c);
        out.push_back(n);
      }
      ++i;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

Regex::Regex(std::string_view pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  const std::string translated = translate(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code, &error_offset,
                              nullptr);
  if (impl_->code == nullptr) {
    throw Error(where + ": invalid regex '" + std::string(pattern) + "': " + pcre2_message(error_code) +
                " at offset " + std::to_string(error_offset));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

std::vector<Span> Regex::find_all(std::string_view text) const {
  std::vector<Span> spans;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  // JIT matching starts on PCRE2's small default stack; a pattern that backtracks deeply
  // on a long input gets a larger one on demand.
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  int rc = 0;
  while (pos <= text.size()) {
    rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), pos, 0, md, ctx)
                    : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && stack == nullptr) {
      stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
      ctx = pcre2_match_context_create(nullptr);
      pcre2_jit_stack_assign(ctx, nullptr, stack);
      continue;
    }
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      spans.emplace_back(begin, end);
      pos = end;
    } else {
      // Empty match: step over one code point.
      pos = begin + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  if (ctx) pcre2_match_context_free(ctx);
  if (stack) pcre2_jit_stack_free(stack);
  pcre2_match_data_free(md);
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    throw Error("tokenizer regex match failed: " + pcre2_message(rc));
  }
  return spans;
}

std::vector<Span> find_all_literal(std::string_view text, std::string_view needle) {
  std::vector<Span> spans;
  if (needle.empty()) return spans;
  size_t pos = 0;
  while ((pos = text.find(needle, pos)) != std::string_view::npos) {
    spans.emplace_back(pos, pos + needle.size());
    pos += needle.size();
  }
  return spans;
}

}  // namespace nibble::tokenizer_detail
