#include "byte_level.h"

#include "utf8.h"

namespace nibble::tokenizer_detail {

namespace {

constexpr bool maps_to_itself(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174); }

std::array<char32_t, 256> make_code_points() {
  std::array<char32_t, 256> cps{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) cps[b] = maps_to_itself(b) ? static_cast<char32_t>(b) : next++;
  return cps;
}

}  // namespace

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    const auto cps = make_code_points();
    for (int b = 0; b < 256; ++b) append_utf8(t[b], cps[b]);
    return t;
  }();
  return table;
}

std::optional<unsigned char> byte_level_byte(char32_t cp) {
  static const std::array<int, 324> reverse = [] {
    std::array<int, 324> r;
    r.fill(-1);
    const auto cps = make_code_points();
    for (int b = 0; b < 256; ++b) r[cps[b]] = b;
    return r;
  }();
  if (cp >= reverse.size() || reverse[cp] < 0) return std::nullopt;
  return static_cast<unsigned char>(reverse[cp]);
}

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& chars = byte_level_chars();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out.append(chars[b]);
  return out;
}

}  // namespace nibble::tokenizer_detail
