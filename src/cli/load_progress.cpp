#include "load_progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

namespace nibble::cli {
namespace {

constexpr int kBarWidth = 40;
constexpr auto kLogInterval = std::chrono::seconds(5);

struct ReporterState {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_log = start;
  int last_percent = -1;
};

void draw_bar(const LoadProgress& p, int percent) {
  int filled = kBarWidth * percent / 100;
  std::fprintf(stderr, "\rloading model [");
  for (int i = 0; i < kBarWidth; ++i) std::fputc(i < filled ? '#' : '.', stderr);
  std::fprintf(stderr, "] %3d%% (%zu/%zu tensors)", percent, p.done, p.total);
  if (p.done >= p.total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

std::function<void(const LoadProgress&)> make_load_progress_reporter() {
  bool tty = isatty(STDERR_FILENO) != 0;
  auto state = std::make_shared<ReporterState>();
  return [tty, state](const LoadProgress& p) {
    if (p.total == 0) return;
    int percent = static_cast<int>(100 * p.done / p.total);
    if (tty) {
      if (percent != state->last_percent) draw_bar(p, percent);
      state->last_percent = percent;
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (p.done >= p.total || now - state->last_log >= kLogInterval || state->last_percent < 0) {
      spdlog::info("loading model: {}% ({}/{} tensors)", percent, p.done, p.total);
      state->last_log = now;
      state->last_percent = percent;
    }
  };
}

}  // namespace nibble::cli
