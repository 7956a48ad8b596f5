#pragma once
// One HTTP request's generations: one engine request per prompt carrying its
// n choices as samples (they share the prompt's prefill and KV blocks), each
// choice with its own RequestStream, pumped until every choice finishes. A
// stop string ends only its own choice (RequestHandle::cancel_sample). Shared
// by both endpoints, streaming or not. Private to server/.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nibble/api/request_stream.h"
#include "nibble/api/requests.h"
#include "nibble/api/responses.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/server/metrics.h"

namespace nibble::server {

struct ChoiceResult {
  std::string text;
  std::string finish_reason;
  int completion_tokens = 0;
};

class GenerationJob {
 public:
  using Clock = std::chrono::steady_clock;
  // Called for each update of choice `index`; returns false when the client is gone.
  using UpdateSink = std::function<bool(int index, const api::StreamUpdate& update)>;
  // Called when nothing arrived for a while; returns false when the client is gone.
  using IdleProbe = std::function<bool()>;

  GenerationJob(EngineLoop& engine, const api::TextCodec& codec, Metrics& metrics, std::string request_id,
                const api::GenerationOptions& options, std::vector<std::vector<int32_t>> prompts, int max_model_len,
                Clock::time_point arrival);
  ~GenerationJob();  // cancels whatever still runs

  // Submits every prompt's choices; throws ApiError (400 context_length_exceeded, 429,
  // 503) before anything is sent. On failure nothing stays submitted.
  void submit();
  // Pumps outputs until every choice finished. Returns false (after
  // cancelling everything) when the sink or the probe reports a gone client.
  bool run(const UpdateSink& sink, const IdleProbe& probe);
  void cancel_all();

  int num_choices() const { return static_cast<int>(choices_.size()); }
  int prompt_index(int choice) const { return choice / n_; }
  const std::vector<int32_t>& prompt(int prompt_index) const { return prompts_[prompt_index]; }
  const ChoiceResult& result(int choice) const { return choices_[choice].result; }
  api::Usage usage() const;
  double time_to_first_token() const;  // seconds; -1 before the first token
  double elapsed() const;

 private:
  // One engine request: one prompt's choices first_choice .. first_choice + num_samples - 1
  // (all n of them unless n exceeds what one engine request may carry).
  struct Submission {
    std::shared_ptr<RequestHandle> handle;
    int first_choice = 0;
    int num_samples = 0;
    bool closed = false;  // every choice of it has finished
  };
  struct Choice {
    int submission = 0;
    int sample = 0;  // its index among the submission's samples
    std::unique_ptr<api::RequestStream> stream;
    ChoiceResult result;
    bool done = false;
    Clock::time_point last_delivery;
    int cached_prompt_tokens = 0;
  };
  void submit_one(int prompt_index, int first_sample, int num_samples, int max_tokens);
  bool deliver(int index, const RequestOutput& output, const UpdateSink& sink);
  // Reads what one submission has ready (waiting up to wait); false when the client is gone.
  bool pump(Submission& submission, std::chrono::milliseconds wait, const UpdateSink& sink, bool& progressed);
  void close_if_done(Submission& submission);

  EngineLoop& engine_;
  const api::TextCodec& codec_;
  Metrics& metrics_;
  std::string request_id_;
  api::GenerationOptions options_;
  std::vector<std::vector<int32_t>> prompts_;
  int n_;
  int max_model_len_;
  Clock::time_point arrival_;
  Clock::time_point first_token_{};
  bool got_first_token_ = false;
  std::vector<Submission> submissions_;
  std::vector<Choice> choices_;
};

}  // namespace nibble::server
