// POST /v1/chat/completions and /v1/completions, streaming (SSE) or not.
#include <spdlog/spdlog.h>

#include <optional>

#include "generation_job.h"
#include "nibble/api/api_error.h"
#include "nibble/api/responses.h"
#include "nibble/core/error.h"
#include "server_state.h"

namespace nibble::server {

using api::ApiError;
using nlohmann::json;

namespace {

enum class Endpoint { Chat, Completions };

// Per-choice output gathered for the non-streaming response.
struct Collected {
  json chat_logprobs = json::array();
  api::CompletionLogprobs completion_logprobs;
};

struct PreparedRequest {
  Endpoint endpoint = Endpoint::Chat;
  api::GenerationOptions options;
  bool logprobs = false;             // chat: logprobs; completions: logprobs present
  int top_logprobs = 0;
  bool echo = false;
  std::vector<std::string> echo_texts;  // per prompt (completions with echo)
  std::vector<std::vector<int32_t>> prompts;
};

PreparedRequest prepare_chat(const ServerState& state, const ServingModel& model, const json& body,
                             const std::string& raw_body) {
  auto parsed = api::parse_chat_completion_request(body, {model.vocab_size, model.max_model_len});
  state.check_model_name(parsed.options.model);
  if (!model.render_chat) throw ApiError::invalid_request("This model has no chat template; use /v1/completions.");
  ChatRenderInput input;
  input.messages = ordered_messages(raw_body, parsed.messages);
  input.add_generation_prompt = parsed.add_generation_prompt;
  input.special_tokens = model.special_tokens;
  input.extra = parsed.chat_template_kwargs;
  std::string prompt_text;
  try {
    prompt_text = model.render_chat(input);
  } catch (const nibble::Error& e) {
    throw ApiError::invalid_request(std::string("The chat template failed on these messages: ") + e.what(),
                                    "messages");
  }
  PreparedRequest r;
  r.endpoint = Endpoint::Chat;
  r.options = parsed.options;
  r.logprobs = parsed.logprobs;
  r.top_logprobs = parsed.top_logprobs;
  // The rendered template carries its own special tokens (BOS included).
  r.prompts.push_back(model.tokenizer->encode(prompt_text, false));
  return r;
}

PreparedRequest prepare_completion(const ServerState& state, const ServingModel& model, const json& body) {
  auto parsed = api::parse_completion_request(body, {model.vocab_size, model.max_model_len});
  state.check_model_name(parsed.options.model);
  PreparedRequest r;
  r.endpoint = Endpoint::Completions;
  r.options = parsed.options;
  r.logprobs = parsed.logprobs.has_value();
  r.top_logprobs = parsed.logprobs.value_or(0);
  r.echo = parsed.echo;
  for (const auto& prompt : parsed.prompts) {
    if (const auto* text = std::get_if<std::string>(&prompt)) {
      r.prompts.push_back(model.tokenizer->encode(*text, true));
      r.echo_texts.push_back(*text);
    } else {
      const auto& ids = std::get<std::vector<int32_t>>(prompt);
      r.prompts.push_back(ids);
      r.echo_texts.push_back(model.codec->decode(ids, parsed.options.skip_special_tokens));
    }
  }
  return r;
}

std::string sse_event(const json& data) { return "data: " + dump_json(data) + "\n\n"; }

void log_access(const std::string& request_id, const char* path, const GenerationJob& job, bool streamed,
                const std::string& outcome) {
  api::Usage u = job.usage();
  double elapsed = job.elapsed();
  double ttft = job.time_to_first_token();
  std::string reasons;
  for (int i = 0; i < job.num_choices(); ++i) {
    if (!reasons.empty()) reasons += ",";
    reasons += job.result(i).finish_reason.empty() ? outcome : job.result(i).finish_reason;
  }
  spdlog::info("{} POST {} {} prompt_tokens={} generated_tokens={} cached_tokens={} ttft={:.3f}s "
               "tokens_per_s={:.1f} elapsed={:.3f}s finish={}",
               request_id, path, streamed ? "stream" : "200", u.prompt_tokens, u.completion_tokens, u.cached_tokens,
               ttft < 0 ? 0.0 : ttft, elapsed > 0 ? u.completion_tokens / elapsed : 0.0, elapsed, reasons);
}

void respond_blocking(const ServingModel& model, const PreparedRequest& r, GenerationJob& job,
                      const api::ResponseHeader& header, httplib::Response& res) {
  std::vector<Collected> collected(job.num_choices());
  std::string error;
  for (int i = 0; i < job.num_choices(); ++i) {
    if (r.echo && r.logprobs) collected[i].completion_logprobs.append_prompt(job.prompt(job.prompt_index(i)), *model.codec);
  }
  job.run(
      [&](int index, const api::StreamUpdate& u) {
        if (!u.error.empty()) error = u.error;
        if (r.endpoint == Endpoint::Chat && r.logprobs) {
          for (auto& entry : api::chat_logprobs_content(u.logprobs, *model.codec)) collected[index].chat_logprobs.push_back(entry);
        } else if (r.endpoint == Endpoint::Completions && r.logprobs) {
          size_t base = r.echo ? r.echo_texts[job.prompt_index(index)].size() : 0;
          collected[index].completion_logprobs.append(u.logprobs, u.text_offsets, base, *model.codec, r.top_logprobs);
        }
        return true;
      },
      [] { return true; });
  if (!error.empty()) throw ApiError::internal("Generation failed: " + error);
  if (r.endpoint == Endpoint::Chat) {
    std::vector<api::ChatChoice> choices;
    for (int i = 0; i < job.num_choices(); ++i) {
      api::ChatChoice c{i, job.result(i).text, job.result(i).finish_reason, std::nullopt};
      if (r.logprobs) c.logprobs_content = collected[i].chat_logprobs;
      choices.push_back(std::move(c));
    }
    send_json(res, 200, api::chat_completion_json(header, choices, job.usage()));
  } else {
    std::vector<api::CompletionChoice> choices;
    for (int i = 0; i < job.num_choices(); ++i) {
      std::string text = job.result(i).text;
      if (r.echo) text = r.echo_texts[job.prompt_index(i)] + text;
      api::CompletionChoice c{i, text, job.result(i).finish_reason, std::nullopt};
      if (r.logprobs) c.logprobs = collected[i].completion_logprobs.to_json();
      choices.push_back(std::move(c));
    }
    send_json(res, 200, api::text_completion_json(header, choices, job.usage()));
  }
}

// Writes a whole SSE stream from inside one content-provider call, so that the
// stream's lifetime is the handler's (graceful shutdown waits for it).
bool write_stream(const ServingModel& model, const PreparedRequest& r, GenerationJob& job,
                  const api::ResponseHeader& header, httplib::DataSink& sink) {
  bool chat = r.endpoint == Endpoint::Chat;
  bool usage_null = r.options.include_usage;
  auto write = [&](const std::string& s) { return sink.is_writable() && sink.write(s.data(), s.size()); };

  for (int i = 0; i < job.num_choices(); ++i) {
    json first;
    if (chat) {
      first = api::chat_chunk_json(header, i, {{"role", "assistant"}, {"content", ""}}, nullptr, std::nullopt, usage_null);
    } else if (r.echo) {
      json lp = nullptr;
      if (r.logprobs) {
        api::CompletionLogprobs prompt_lp;
        prompt_lp.append_prompt(job.prompt(job.prompt_index(i)), *model.codec);
        lp = prompt_lp.to_json();
      }
      first = api::completion_chunk_json(header, i, r.echo_texts[job.prompt_index(i)], lp, std::nullopt, usage_null);
    } else {
      continue;
    }
    if (!write(sse_event(first))) return false;
  }

  std::string error;
  auto send_update = [&](int index, const api::StreamUpdate& u, const std::optional<std::string>& finish_reason) {
    json chunk;
    if (chat) {
      json delta = json::object();
      if (!u.text.empty() || !finish_reason) delta["content"] = u.text;
      json lp = r.logprobs ? api::chat_logprobs_content(u.logprobs, *model.codec) : json(nullptr);
      chunk = api::chat_chunk_json(header, index, delta, lp, finish_reason, usage_null);
    } else {
      json lp = nullptr;
      if (r.logprobs) {
        api::CompletionLogprobs piece;
        size_t base = r.echo ? r.echo_texts[job.prompt_index(index)].size() : 0;
        piece.append(u.logprobs, u.text_offsets, base, *model.codec, r.top_logprobs);
        lp = piece.to_json();
      }
      chunk = api::completion_chunk_json(header, index, u.text, lp, finish_reason, usage_null);
    }
    return write(sse_event(chunk));
  };
  bool alive = job.run(
      [&](int index, const api::StreamUpdate& u) {
        if (!u.error.empty()) {
          error = u.error;
          // Text generated before the failure still reaches the client.
          if (!u.text.empty()) send_update(index, u, std::nullopt);
          return false;  // ends the job; the error event follows
        }
        return send_update(index, u, u.finish_reason);
      },
      [&] { return write(": keep-alive\n\n"); });

  if (!error.empty()) {
    json e = api::error_body("Generation failed: " + error, "internal_error", std::nullopt, "internal_error");
    write(sse_event(e));
    return true;
  }
  if (!alive) return false;
  if (r.options.include_usage) {
    json usage = chat ? api::chat_usage_chunk_json(header, job.usage())
                      : api::completion_usage_chunk_json(header, job.usage());
    if (!write(sse_event(usage))) return false;
  }
  return write("data: [DONE]\n\n");
}

void handle_generation(ServerState& state, Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  auto arrival = GenerationJob::Clock::now();
  const ServingModel& model = state.ready_model();
  json body = api::parse_json_body(req.body);
  auto prepared = std::make_shared<PreparedRequest>(endpoint == Endpoint::Chat ? prepare_chat(state, model, body, req.body)
                                                                               : prepare_completion(state, model, body));
  std::string request_id = request_id_of(res);
  auto job = std::make_shared<GenerationJob>(*model.engine, *model.codec, state.metrics, request_id,
                                             prepared->options, prepared->prompts, model.max_model_len, arrival);
  job->submit();  // any refusal is a plain JSON error: nothing has been sent yet

  api::ResponseHeader header{api::make_response_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-"),
                             api::unix_time_now(), state.config.served_model_name, state.config.system_fingerprint};
  const char* path = endpoint == Endpoint::Chat ? "/v1/chat/completions" : "/v1/completions";
  if (!prepared->options.stream) {
    ActiveGeneration active(state.active_generations);
    respond_blocking(model, *prepared, *job, header, res);
    log_access(request_id, path, *job, false, "");
    return;
  }
  auto active = std::make_shared<ActiveGeneration>(state.active_generations);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&model, prepared, job, header, request_id, path, active](size_t, httplib::DataSink& sink) {
        bool ok = write_stream(model, *prepared, *job, header, sink);
        log_access(request_id, path, *job, true, ok ? "" : "client_disconnected");
        if (!ok) {
          job->cancel_all();  // frees the KV blocks at the engine's next step
          return false;
        }
        sink.done();
        return true;
      },
      [job](bool) { job->cancel_all(); });
}

}  // namespace

void register_completion_routes(httplib::Server& http, ServerState& state) {
  http.Post("/v1/chat/completions", guarded([&state](const httplib::Request& req, httplib::Response& res) {
              handle_generation(state, Endpoint::Chat, req, res);
            }));
  http.Post("/v1/completions", guarded([&state](const httplib::Request& req, httplib::Response& res) {
              handle_generation(state, Endpoint::Completions, req, res);
            }));
}

}  // namespace nibble::server
