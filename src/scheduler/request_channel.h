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
#include <vector>

#include "nibble/scheduler/engine_loop.h"

namespace nibble {

class RequestChannel : public RequestHandle {
 public:
  static constexpr int kAllSamples = -1;
  // on_cancel(sample) asks the engine loop to abort one sample of this
  // request, or all of them (kAllSamples); it must stay callable (or become a
  // no-op) for as long as the handle lives.
  RequestChannel(int num_samples, std::function<void(int sample)> on_cancel)
      : num_samples_(num_samples),
        sample_finished_(static_cast<size_t>(num_samples), 0),
        sample_cancel_sent_(static_cast<size_t>(num_samples), 0),
        on_cancel_(std::move(on_cancel)) {}

  std::optional<RequestOutput> next(std::chrono::milliseconds timeout) override;
  void cancel() override;
  void cancel_sample(int index) override;
  bool finished() const override;

  // Engine side.
  void push(RequestOutput output);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  int num_samples_;
  int num_finished_ = 0;
  std::vector<uint8_t> sample_finished_;
  std::vector<uint8_t> sample_cancel_sent_;
  bool cancel_sent_ = false;
  std::function<void(int sample)> on_cancel_;
};

}  // namespace nibble
