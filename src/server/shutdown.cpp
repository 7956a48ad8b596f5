#include "nibble/server/shutdown.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <ctime>

#include <spdlog/spdlog.h>

#include "nibble/server/http_server.h"

namespace nibble::server {

namespace {
sigset_t shutdown_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void block_shutdown_signals() {
  sigset_t set = shutdown_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool wait_for_shutdown_signal(const std::function<bool()>& keep_waiting) {
  sigset_t set = shutdown_set();
  timespec poll{0, 100'000'000};
  while (keep_waiting()) {
    int sig = sigtimedwait(&set, nullptr, &poll);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("received {}, draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
      return true;
    }
  }
  return false;
}

void drain_and_stop(HttpServer& server, const std::function<void()>& drain_engine) {
  server.begin_drain();
  server.stop();
  if (drain_engine) drain_engine();
}

}  // namespace nibble::server
