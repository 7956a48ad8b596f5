#include "nibble/api/request_stream.h"

#include <algorithm>

namespace nibble::api {

const char* finish_reason_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
  }
  return "error";
}

RequestStream::RequestStream(std::unique_ptr<TextStreamDecoder> decoder, StreamOptions options)
    : decoder_(std::move(decoder)), options_(std::move(options)) {}

bool RequestStream::match_stop(std::string& out) {
  size_t best = std::string::npos;
  size_t best_len = 0;
  for (const auto& stop : options_.stop_strings) {
    size_t pos = pending_.find(stop);
    if (pos != std::string::npos && (best == std::string::npos || pos < best)) {
      best = pos;
      best_len = stop.size();
    }
  }
  if (best == std::string::npos) return false;
  size_t keep = best + (options_.include_stop_str_in_output ? best_len : 0);
  out += pending_.substr(0, keep);
  pending_.clear();
  stop_matched_ = true;
  return true;
}

void RequestStream::release_safe_text(std::string& out) {
  // The longest suffix of pending_ that is a proper prefix of some stop string
  // may still grow into a match: hold it back.
  size_t hold = 0;
  for (const auto& stop : options_.stop_strings) {
    size_t max_len = std::min(stop.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  out += pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
}

StreamUpdate RequestStream::push(const RequestOutput& output) {
  StreamUpdate update;
  if (finished_) return update;
  size_t count = output.new_tokens.size();
  for (size_t i = 0; i < count && !stop_matched_; ++i) {
    int32_t token = output.new_tokens[i];
    ++completion_tokens_;
    if (i < output.logprobs.size()) {
      update.logprobs.push_back(output.logprobs[i]);
      update.text_offsets.push_back(emitted_.size() + update.text.size() + pending_.size());
    }
    bool is_final_stop_token = output.finish && output.finished_by_stop_token && i + 1 == count;
    if (is_final_stop_token && !options_.include_stop_str_in_output) break;  // the stop token's text is not output
    std::string piece = decoder_->push(token);
    pending_ += piece;
    if (!options_.stop_strings.empty() && match_stop(update.text)) break;
  }
  if (stop_matched_) {
    update.finish_reason = "stop";
  } else if (output.finish) {
    pending_ += decoder_->finish();
    if (!match_stop(update.text)) {
      update.text += pending_;
      pending_.clear();
    }
    update.finish_reason = stop_matched_ ? "stop" : finish_reason_string(*output.finish);
    if (*output.finish == FinishReason::Error) update.error = output.error.empty() ? "generation failed" : output.error;
  } else {
    release_safe_text(update.text);
  }
  if (update.finish_reason) finished_ = true;
  emitted_ += update.text;
  return update;
}

}  // namespace nibble::api
