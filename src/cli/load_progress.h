#pragma once
// Model-loading progress for the CLI: a progress bar on a terminal, a log line
// every few seconds otherwise (systemd, Docker, CI logs).
#include <functional>

#include "nibble/model/loader.h"

namespace nibble::cli {

std::function<void(const LoadProgress&)> make_load_progress_reporter();

}  // namespace nibble::cli
