#pragma once
// The output side of one generated sample, shared by both endpoints, streaming
// or not: detokenizes incrementally, matches stop strings on the text across
// token boundaries, holds back text that may be the start of a stop string,
// never emits text belonging to a stop string (unless asked to), and maps the
// engine's finish to an OpenAI finish_reason.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nibble/api/text_decoder.h"
#include "nibble/scheduler/request.h"

namespace nibble::api {

struct StreamOptions {
  std::vector<std::string> stop_strings;
  bool include_stop_str_in_output = false;
};

// What one push() produced.
struct StreamUpdate {
  std::string text;                    // new text, safe to send
  std::vector<TokenLogprob> logprobs;  // of the tokens consumed by this push
  std::vector<size_t> text_offsets;    // parallel to logprobs: where each token's text starts in text()
  std::optional<std::string> finish_reason;  // "stop", "length", "abort", "error"
  std::string error;                   // when finish_reason == "error"
};

const char* finish_reason_string(FinishReason reason);

class RequestStream {
 public:
  RequestStream(std::unique_ptr<TextStreamDecoder> decoder, StreamOptions options);

  // Feeds one engine delivery for this sample. When a stop string matches, the
  // update finishes with "stop" and stop_string_matched() turns true: the
  // caller cancels the engine request. Deliveries after the finish are ignored.
  StreamUpdate push(const RequestOutput& output);

  bool finished() const { return finished_; }
  bool stop_string_matched() const { return stop_matched_; }
  int completion_tokens() const { return completion_tokens_; }
  const std::string& text() const { return emitted_; }  // everything emitted so far

 private:
  // Moves the part of pending_ that cannot start a stop string into out.
  void release_safe_text(std::string& out);
  // Looks for a stop string in pending_; on a match emits up to it and finishes.
  bool match_stop(std::string& out);

  std::unique_ptr<TextStreamDecoder> decoder_;
  StreamOptions options_;
  std::string pending_;  // decoded, not yet emitted (may begin a stop string)
  std::string emitted_;
  int completion_tokens_ = 0;
  bool finished_ = false;
  bool stop_matched_ = false;
};

}  // namespace nibble::api
