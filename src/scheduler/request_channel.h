#pragma once
// The per-request output channel behind a RequestHandle: the engine thread
// pushes deliveries, one HTTP thread reads them.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include "nibble/scheduler/engine_loop.h"

namespace nibble {

class RequestChannel : public RequestHandle {
 public:
  // on_cancel asks the engine loop to abort this request; it must stay
  // callable (or become a no-op) for as long as the handle lives.
  RequestChannel(int num_samples, std::function<void()> on_cancel)
      : num_samples_(num_samples), on_cancel_(std::move(on_cancel)) {}

  std::optional<RequestOutput> next(std::chrono::milliseconds timeout) override;
  void cancel() override;
  bool finished() const override;

  // Engine side.
  void push(RequestOutput output);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  int num_samples_;
  int num_finished_ = 0;
  bool cancel_sent_ = false;
  std::function<void()> on_cancel_;
};

}  // namespace nibble
