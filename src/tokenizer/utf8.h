#pragma once
// UTF-8 helpers shared by the tokenizer pieces. Byte strings handed to these
// functions are valid UTF-8 unless a function says otherwise.
#include <cstddef>
#include <string>
#include <string_view>

namespace nibble::tokenizer_detail {

// Appends the UTF-8 encoding of a code point.
void append_utf8(std::string& out, char32_t cp);

// Decodes the code point starting at s[i] and advances i past it. s must be valid UTF-8.
char32_t next_code_point(std::string_view s, size_t& i);

// Byte length of the UTF-8 sequence starting with this lead byte (1 for invalid leads).
size_t utf8_sequence_length(unsigned char lead);

// Converts arbitrary bytes to valid UTF-8 the way Rust's String::from_utf8_lossy does:
// every maximal ill-formed subpart becomes one U+FFFD.
std::string to_valid_utf8(std::string_view bytes);
bool is_valid_utf8(std::string_view bytes);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t cp);
// Rust's char::is_alphanumeric (Unicode Alphabetic or Numeric general categories).
bool is_alphanumeric(char32_t cp);

// The last / first code point of a non-empty valid UTF-8 string.
char32_t last_code_point(std::string_view s);
char32_t first_code_point(std::string_view s);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace nibble::tokenizer_detail
