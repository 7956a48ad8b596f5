#include "request_channel.h"

#include <iterator>

namespace nibble {

namespace {

// Appends `later` (same sample, delivered after `into`) to `into`.
void merge_into(RequestOutput& into, RequestOutput&& later) {
  into.new_tokens.insert(into.new_tokens.end(), later.new_tokens.begin(), later.new_tokens.end());
  into.logprobs.insert(into.logprobs.end(), std::make_move_iterator(later.logprobs.begin()),
                       std::make_move_iterator(later.logprobs.end()));
  into.finish = later.finish;
  into.finished_by_stop_token = later.finished_by_stop_token;
  into.error = std::move(later.error);
}

}  // namespace

std::optional<RequestOutput> RequestChannel::next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || num_finished_ == num_samples_; });
  if (queue_.empty()) return std::nullopt;
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  // A slow reader gets everything its sample produced meanwhile in one piece.
  for (auto it = queue_.begin(); it != queue_.end() && !out.finish;) {
    if (it->index == out.index) {
      merge_into(out, std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void RequestChannel::cancel() {
  {
    std::lock_guard lock(mu_);
    if (num_finished_ == num_samples_ || cancel_sent_) return;
    cancel_sent_ = true;
  }
  on_cancel_(kAllSamples);
}

void RequestChannel::cancel_sample(int index) {
  {
    std::lock_guard lock(mu_);
    if (index < 0 || index >= num_samples_ || cancel_sent_) return;
    const auto i = static_cast<size_t>(index);
    if (sample_finished_[i] || sample_cancel_sent_[i]) return;
    sample_cancel_sent_[i] = 1;
  }
  on_cancel_(index);
}

bool RequestChannel::finished() const {
  std::lock_guard lock(mu_);
  return num_finished_ == num_samples_;
}

void RequestChannel::push(RequestOutput output) {
  {
    std::lock_guard lock(mu_);
    if (output.finish) {
      ++num_finished_;
      if (output.index >= 0 && output.index < num_samples_) sample_finished_[static_cast<size_t>(output.index)] = 1;
    }
    queue_.push_back(std::move(output));
  }
  cv_.notify_all();
}

}  // namespace nibble
