#include "sse_parser.h"

namespace nibble::serve_bench {

SseParser::SseParser(EventHandler on_event, std::size_t max_pending)
    : on_event_(std::move(on_event)), max_pending_(max_pending) {}

bool SseParser::feed(std::string_view bytes) {
  pending_.append(bytes);
  std::size_t start = 0;
  while (start < pending_.size()) {
    const std::size_t newline = pending_.find('\n', start);
    if (newline == std::string::npos) break;
    std::string_view line(pending_.data() + start, newline - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    handle_line(line);
    start = newline + 1;
  }
  pending_.erase(0, start);
  return pending_.size() <= max_pending_;
}

void SseParser::finish() {
  if (!pending_.empty()) {
    std::string line = std::move(pending_);
    pending_.clear();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    handle_line(line);
  }
  dispatch();
}

void SseParser::handle_line(std::string_view line) {
  if (line.empty()) {
    dispatch();
    return;
  }
  if (line.front() == ':') return;  // comment / keep-alive
  const std::size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field != "data") return;
  if (has_data_) data_.push_back('\n');
  data_.append(value);
  has_data_ = true;
}

void SseParser::dispatch() {
  if (!has_data_) return;
  has_data_ = false;
  std::string data = std::move(data_);
  data_.clear();
  on_event_(data);
}

}  // namespace nibble::serve_bench
