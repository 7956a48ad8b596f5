#include "generation_job.h"

#include <fmt/format.h>

#include "nibble/api/api_error.h"

namespace nibble::server {

using api::ApiError;

namespace {
constexpr auto kSingleWait = std::chrono::milliseconds(100);
constexpr auto kMultiWait = std::chrono::milliseconds(5);
constexpr auto kIdleProbeInterval = std::chrono::milliseconds(1000);

double seconds(GenerationJob::Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

GenerationJob::GenerationJob(EngineLoop& engine, const api::TextCodec& codec, Metrics& metrics, std::string request_id,
                             const api::GenerationOptions& options, std::vector<std::vector<int32_t>> prompts,
                             int max_model_len, Clock::time_point arrival)
    : engine_(engine),
      codec_(codec),
      metrics_(metrics),
      request_id_(std::move(request_id)),
      options_(options),
      prompts_(std::move(prompts)),
      n_(options.n),
      max_model_len_(max_model_len),
      arrival_(arrival) {}

GenerationJob::~GenerationJob() { cancel_all(); }

void GenerationJob::cancel_all() {
  for (auto& c : choices_)
    if (c.handle && !c.done) c.handle->cancel();
}

void GenerationJob::submit() {
  std::vector<int> max_tokens;
  for (const auto& prompt : prompts_) {
    if (prompt.empty()) throw ApiError::invalid_request("The prompt is empty after tokenization.", "prompt");
    max_tokens.push_back(api::resolve_max_tokens(options_, static_cast<int>(prompt.size()), max_model_len_));
  }
  for (size_t p = 0; p < prompts_.size(); ++p) {
    for (int s = 0; s < n_; ++s) {
      GenerationRequest request;
      request.id = fmt::format("{}-{}", request_id_, choices_.size());
      request.prompt = prompts_[p];
      request.sampling = options_.sampling;
      // Each choice is its own engine request; seeded choices stay distinct and reproducible.
      if (request.sampling.seed) request.sampling.seed = *request.sampling.seed + static_cast<uint64_t>(s);
      request.stop = options_.stop;
      request.stop.max_tokens = max_tokens[p];
      request.n = 1;
      SubmitResult submitted = engine_.submit(std::move(request));
      if (submitted.status != SubmitStatus::Ok) {
        cancel_all();
        switch (submitted.status) {
          case SubmitStatus::TooLong: throw ApiError::context_length_exceeded(submitted.message);
          case SubmitStatus::QueueFull:
            throw ApiError::rate_limited("The server is at capacity (waiting queue full); retry shortly. " +
                                         submitted.message);
          case SubmitStatus::ShuttingDown: throw ApiError::unavailable("The server is shutting down.");
          default: throw ApiError::invalid_request(submitted.message);
        }
      }
      Choice choice;
      choice.handle = std::move(submitted.handle);
      choice.stream = std::make_unique<api::RequestStream>(
          codec_.stream_decoder(prompts_[p], options_.skip_special_tokens),
          api::StreamOptions{options_.stop_strings, options_.include_stop_str_in_output});
      choices_.push_back(std::move(choice));
    }
  }
}

bool GenerationJob::deliver(int index, const RequestOutput& output, const UpdateSink& sink) {
  Choice& c = choices_[index];
  auto now = Clock::now();
  if (!output.new_tokens.empty()) {
    if (!got_first_token_) {
      got_first_token_ = true;
      first_token_ = now;
      metrics_.observe_time_to_first_token(seconds(now - arrival_));
    } else if (c.last_delivery != Clock::time_point{}) {
      metrics_.observe_inter_token_latency(seconds(now - c.last_delivery) / double(output.new_tokens.size()));
    }
    c.last_delivery = now;
  }
  if (output.cached_prompt_tokens > c.cached_prompt_tokens) c.cached_prompt_tokens = output.cached_prompt_tokens;
  api::StreamUpdate update = c.stream->push(output);
  c.result.text = c.stream->text();
  c.result.completion_tokens = c.stream->completion_tokens();
  if (update.finish_reason) {
    c.done = true;
    c.result.finish_reason = *update.finish_reason;
    if (c.stream->stop_string_matched()) c.handle->cancel();  // the engine frees it at its next step
    metrics_.count_finished(*update.finish_reason);
    metrics_.observe_e2e_latency(seconds(now - arrival_));
  }
  if (update.text.empty() && update.logprobs.empty() && !update.finish_reason) return true;
  return sink(index, update);
}

bool GenerationJob::run(const UpdateSink& sink, const IdleProbe& probe) {
  auto last_activity = Clock::now();
  for (;;) {
    bool any_open = false;
    bool progressed = false;
    int open_count = 0;
    for (const auto& c : choices_) open_count += c.done ? 0 : 1;
    for (int i = 0; i < num_choices(); ++i) {
      Choice& c = choices_[i];
      if (c.done) continue;
      any_open = true;
      auto wait = open_count == 1 ? kSingleWait : (progressed ? std::chrono::milliseconds(0) : kMultiWait);
      auto output = c.handle->next(wait);
      if (!output) {
        if (c.handle->finished() && !c.done) {
          // The channel closed without a finish: treat it as aborted.
          RequestOutput end;
          end.finish = FinishReason::Abort;
          if (!deliver(i, end, sink)) {
            cancel_all();
            return false;
          }
        }
        continue;
      }
      progressed = true;
      if (!deliver(i, *output, sink)) {
        cancel_all();
        return false;
      }
    }
    if (!any_open) return true;
    auto now = Clock::now();
    if (progressed) {
      last_activity = now;
    } else if (now - last_activity >= kIdleProbeInterval) {
      last_activity = now;
      if (!probe()) {
        cancel_all();
        return false;
      }
    }
  }
}

api::Usage GenerationJob::usage() const {
  api::Usage u;
  for (const auto& p : prompts_) u.prompt_tokens += static_cast<int>(p.size());
  for (size_t i = 0; i < choices_.size(); ++i) {
    u.completion_tokens += choices_[i].result.completion_tokens;
    if (i % n_ == 0) u.cached_tokens += choices_[i].cached_prompt_tokens;
  }
  return u;
}

double GenerationJob::time_to_first_token() const {
  return got_first_token_ ? seconds(first_token_ - arrival_) : -1.0;
}

double GenerationJob::elapsed() const { return seconds(Clock::now() - arrival_); }

}  // namespace nibble::server
