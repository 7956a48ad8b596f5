#include "nibble/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "nibble/core/error.h"

namespace nibble {

void setup_logging(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw_error("unknown log level '" + level + "' (use trace, debug, info, warn, error, critical or off)");
  spdlog::drop("nibble");
  auto logger = spdlog::stderr_color_mt("nibble");
  spdlog::set_default_logger(logger);
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
}

}  // namespace nibble
