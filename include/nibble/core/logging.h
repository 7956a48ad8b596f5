#pragma once
// spdlog setup shared by every command. Modules log through spdlog directly.
#include <string>

namespace nibble {

// level: trace, debug, info, warn, error, critical, off.
void setup_logging(const std::string& level);

}  // namespace nibble
