#pragma once
// Regular expressions for tokenizer.json patterns, run by PCRE2 (UTF mode, JIT).
// Hugging Face compiles these patterns with Oniguruma; the few constructs whose
// meaning differs between the two engines (\s, \S) are rewritten to Oniguruma's.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nibble::tokenizer_detail {

using Span = std::pair<size_t, size_t>;  // [begin, end) byte offsets

class Regex {
 public:
  // Throws nibble::Error naming `where` when the pattern does not compile.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping, non-empty match in `text` (valid UTF-8), left to right.
  std::vector<Span> find_all(std::string_view text) const;

  // Rewrites an Oniguruma-syntax pattern into an equivalent PCRE2 pattern.
  static std::string translate(std::string_view pattern);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every non-overlapping occurrence of a literal (non-empty) string.
std::vector<Span> find_all_literal(std::string_view text, std::string_view needle);

}  // namespace nibble::tokenizer_detail
