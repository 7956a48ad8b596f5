#include "generation_job.h"

#include <algorithm>

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
  for (auto& sub : submissions_)
    if (sub.handle && !sub.closed) sub.handle->cancel();
}

void GenerationJob::submit() {
  std::vector<int> max_tokens;
  for (const auto& prompt : prompts_) {
    if (prompt.empty()) throw ApiError::invalid_request("The prompt is empty after tokenization.", "prompt");
    max_tokens.push_back(api::resolve_max_tokens(options_, static_cast<int>(prompt.size()), max_model_len_));
  }
  const int per_request = std::max(1, engine_.max_samples_per_request());
  for (size_t p = 0; p < prompts_.size(); ++p) {
    for (int first = 0; first < n_; first += per_request) {
      submit_one(static_cast<int>(p), first, std::min(per_request, n_ - first), max_tokens[p]);
    }
  }
}

void GenerationJob::submit_one(int prompt_index, int first_sample, int num_samples, int max_tokens) {
  GenerationRequest request;
  request.id = fmt::format("{}-{}", request_id_, submissions_.size());
  request.prompt = prompts_[prompt_index];
  request.sampling = options_.sampling;
  // The engine gives sample j the seed + j, so choice s of a seeded request
  // always samples with seed + s, however the choices are split into requests.
  if (request.sampling.seed) request.sampling.seed = *request.sampling.seed + static_cast<uint64_t>(first_sample);
  request.stop = options_.stop;
  request.stop.max_tokens = max_tokens;
  request.n = num_samples;
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
  Submission sub;
  sub.handle = std::move(submitted.handle);
  sub.first_choice = static_cast<int>(choices_.size());
  sub.num_samples = num_samples;
  for (int s = 0; s < num_samples; ++s) {
    Choice choice;
    choice.submission = static_cast<int>(submissions_.size());
    choice.sample = s;
    choice.stream = std::make_unique<api::RequestStream>(
        codec_.stream_decoder(prompts_[prompt_index], options_.skip_special_tokens),
        api::StreamOptions{options_.stop_strings, options_.include_stop_str_in_output});
    choices_.push_back(std::move(choice));
  }
  submissions_.push_back(std::move(sub));
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
    // Only this choice ends: the engine frees its sample at its next step, the others go on.
    if (c.stream->stop_string_matched()) submissions_[c.submission].handle->cancel_sample(c.sample);
    metrics_.count_finished(*update.finish_reason);
    metrics_.observe_e2e_latency(seconds(now - arrival_));
  }
  if (update.text.empty() && update.logprobs.empty() && !update.finish_reason) return true;
  return sink(index, update);
}

void GenerationJob::close_if_done(Submission& sub) {
  for (int s = 0; s < sub.num_samples; ++s)
    if (!choices_[sub.first_choice + s].done) return;
  sub.closed = true;  // what the engine still sends (the aborts of cancelled samples) is not needed
}

bool GenerationJob::pump(Submission& sub, std::chrono::milliseconds wait, const UpdateSink& sink, bool& progressed) {
  auto output = sub.handle->next(wait);
  if (!output) {
    if (!sub.handle->finished()) return true;
    // The channel closed without a finish for some choices: treat them as aborted.
    for (int s = 0; s < sub.num_samples; ++s) {
      if (choices_[sub.first_choice + s].done) continue;
      RequestOutput end;
      end.index = s;
      end.finish = FinishReason::Abort;
      if (!deliver(sub.first_choice + s, end, sink)) return false;
    }
    sub.closed = true;
    return true;
  }
  progressed = true;
  if (output->index < 0 || output->index >= sub.num_samples) return true;
  const int choice = sub.first_choice + output->index;
  if (choices_[choice].done) return true;  // e.g. the abort that follows a stop string's cancel
  if (!deliver(choice, *output, sink)) return false;
  close_if_done(sub);
  return true;
}

bool GenerationJob::run(const UpdateSink& sink, const IdleProbe& probe) {
  auto last_activity = Clock::now();
  for (;;) {
    int open_count = 0;
    for (const auto& sub : submissions_) open_count += sub.closed ? 0 : 1;
    if (open_count == 0) return true;
    bool progressed = false;
    for (auto& sub : submissions_) {
      if (sub.closed) continue;
      auto wait = open_count == 1 ? kSingleWait : (progressed ? std::chrono::milliseconds(0) : kMultiWait);
      if (!pump(sub, wait, sink, progressed)) {
        cancel_all();
        return false;
      }
    }
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
