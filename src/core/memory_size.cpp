#include <cctype>
#include <cmath>
#include <string>

#include "nibble/core/error.h"
#include "nibble/core/memory_size.h"

namespace nibble {

uint64_t parse_memory_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  NIBBLE_CHECK(i > 0, "memory size '" + text + "' must start with a number (e.g. 24GiB)");
  double value = 0.0;
  try {
    value = std::stod(text.substr(0, i));
  } catch (const std::exception&) {
    throw Error("memory size '" + text + "' has a malformed number");
  }
  std::string unit;
  for (size_t j = i; j < text.size(); ++j)
    if (!std::isspace(static_cast<unsigned char>(text[j]))) unit += static_cast<char>(std::tolower(text[j]));
  double scale = 0.0;
  if (unit.empty() || unit == "b") scale = 1.0;
  else if (unit == "k" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  NIBBLE_CHECK(scale > 0.0, "memory size '" + text + "' has an unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  const double bytes = std::floor(value * scale);
  NIBBLE_CHECK(bytes >= 1.0 && bytes < 1.8e19, "memory size '" + text + "' is out of range");
  return static_cast<uint64_t>(bytes);
}

}  // namespace nibble
