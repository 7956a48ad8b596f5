#pragma once
// Incremental Server-Sent Events parser: bytes arrive in arbitrary pieces
// (a network read may hold half a line or several events); each complete
// event's data (its `data:` lines joined by '\n') is handed to a callback.
// Comment lines (`:`), `event:`, `id:` and `retry:` fields are ignored.
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace nibble::serve_bench {

class SseParser {
 public:
  using EventHandler = std::function<void(std::string_view data)>;

  // max_pending bounds the bytes buffered for one unfinished line, so a
  // server that never sends a newline cannot grow memory without limit.
  explicit SseParser(EventHandler on_event, std::size_t max_pending = 16u << 20);

  // Feeds bytes; returns false once the pending-line limit is exceeded.
  bool feed(std::string_view bytes);
  // End of stream: dispatches an event left without its closing blank line.
  void finish();

 private:
  void handle_line(std::string_view line);
  void dispatch();

  EventHandler on_event_;
  std::size_t max_pending_;
  std::string pending_;  // bytes of the unfinished line
  std::string data_;     // data of the event being built
  bool has_data_ = false;
};

}  // namespace nibble::serve_bench
