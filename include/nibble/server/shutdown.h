#pragma once
// Graceful shutdown on SIGTERM / SIGINT without a signal handler: the signals
// are blocked in every thread and one thread waits for them (sigtimedwait).
#include <chrono>
#include <functional>

namespace nibble::server {

class HttpServer;

// Blocks SIGINT and SIGTERM in the calling thread and in every thread it
// starts afterwards; call first thing in main / the serve command. Also
// ignores SIGPIPE (a client that went away must not kill the server).
void block_shutdown_signals();

// Waits until SIGINT/SIGTERM arrives (returns true) or keep_waiting() turns
// false (returns false), checking every 100 ms.
bool wait_for_shutdown_signal(const std::function<bool()>& keep_waiting);

// The drain sequence: /health turns 503 and new generations are refused, the
// listener stops accepting, drain_engine() lets running requests finish (up
// to its timeout, then aborts them), and in-flight streams write their end.
// The caller then joins the thread running HttpServer::run(), which returns
// once every handler is done.
void drain_and_stop(HttpServer& server, const std::function<void()>& drain_engine);

}  // namespace nibble::server
