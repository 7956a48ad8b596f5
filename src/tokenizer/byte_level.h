#pragma once
// GPT-2's reversible byte <-> printable-character mapping (bytes_to_unicode).
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace nibble::tokenizer_detail {

// UTF-8 of the character that stands for each byte.
const std::array<std::string, 256>& byte_level_chars();
// The byte a character stands for, if it is one of the 256 mapped characters.
std::optional<unsigned char> byte_level_byte(char32_t cp);
// Maps every byte of `bytes` to its character.
std::string bytes_to_byte_level(std::string_view bytes);

// The GPT-2 split regex used by the ByteLevel pre-tokenizer when use_regex is true.
inline constexpr std::string_view kGpt2SplitRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

}  // namespace nibble::tokenizer_detail
