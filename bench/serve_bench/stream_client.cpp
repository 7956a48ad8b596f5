#include "stream_client.h"

#include <httplib.h>

#include "sse_parser.h"

namespace nibble::serve_bench {

namespace {
// A response body larger than this is a broken server, not a benchmark.
constexpr std::size_t kMaxBodyBytes = 256u << 20;
// Error bodies are kept only this long in messages.
constexpr std::size_t kMaxErrorText = 300;

std::string clip(const std::string& text) {
  return text.size() <= kMaxErrorText ? text : text.substr(0, kMaxErrorText) + "...";
}

// The text a chunk adds: choices[0].text (completions) or
// choices[0].delta.content (chat). Empty when the chunk carries none.
std::string chunk_text(const nlohmann::json& choice, Endpoint endpoint) {
  if (endpoint == Endpoint::completions) {
    auto it = choice.find("text");
    return it != choice.end() && it->is_string() ? it->get<std::string>() : std::string{};
  }
  auto delta = choice.find("delta");
  if (delta == choice.end() || !delta->is_object()) return {};
  auto content = delta->find("content");
  return content != delta->end() && content->is_string() ? content->get<std::string>() : std::string{};
}
}  // namespace

StreamClient::StreamClient(const Target& target, std::string api_key, double timeout_s)
    : target_(target), api_key_(std::move(api_key)), timeout_s_(timeout_s) {
  client_ = std::make_unique<httplib::Client>(target_.host, target_.port);
  client_->set_keep_alive(true);
  // Without TCP_NODELAY, the request body written after its headers waits
  // for a delayed ACK (~40 ms on Linux) and inflates every TTFT.
  client_->set_tcp_nodelay(true);
  client_->set_connection_timeout(10, 0);
  const auto whole = static_cast<time_t>(timeout_s_);
  const auto micros = static_cast<time_t>((timeout_s_ - static_cast<double>(whole)) * 1e6);
  client_->set_read_timeout(whole, micros);
  client_->set_write_timeout(whole, micros);
}

StreamClient::~StreamClient() = default;

RequestResult StreamClient::stream(const std::string& path, const nlohmann::json& body,
                                   Endpoint endpoint) {
  RequestResult result;
  bool done = false;
  std::string stream_error;
  std::string raw;  // the body, kept only for error reports of non-200 answers
  int status = 0;
  std::size_t received = 0;

  SseParser parser([&](std::string_view data) {
    if (done || !stream_error.empty()) return;
    const Clock::time_point now = Clock::now();
    if (data == "[DONE]") {
      done = true;
      return;
    }
    const nlohmann::json chunk = nlohmann::json::parse(data, nullptr, false);
    if (chunk.is_discarded() || !chunk.is_object()) {
      stream_error = "malformed SSE chunk: " + clip(std::string(data));
      return;
    }
    if (auto err = chunk.find("error"); err != chunk.end() && !err->is_null()) {
      stream_error = "error event: " + clip(err->dump());
      return;
    }
    if (auto choices = chunk.find("choices"); choices != chunk.end() && choices->is_array()) {
      bool has_text = false;
      for (const auto& choice : *choices) {
        if (!choice.is_object()) continue;
        if (!chunk_text(choice, endpoint).empty()) has_text = true;
        auto reason = choice.find("finish_reason");
        if (reason != choice.end() && reason->is_string()) result.finish_reason = reason->get<std::string>();
      }
      if (has_text) result.content_times.push_back(now);
    }
    if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
      result.prompt_tokens = usage->value("prompt_tokens", -1);
      result.completion_tokens = usage->value("completion_tokens", -1);
    }
  });

  httplib::Request req;
  req.method = "POST";
  req.path = target_.base_path + path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!api_key_.empty()) req.set_header("Authorization", "Bearer " + api_key_);
  req.response_handler = [&](const httplib::Response& response) {
    status = response.status;
    return true;
  };
  bool timed_out = false;
  bool too_big = false;
  req.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    received += length;
    if (received > kMaxBodyBytes) {
      too_big = true;
      return false;
    }
    if (status != 200) {
      if (raw.size() < kMaxErrorText * 4) raw.append(data, length);
      return true;
    }
    if (!parser.feed(std::string_view(data, length))) {
      too_big = true;
      return false;
    }
    if (std::chrono::duration<double>(Clock::now() - result.sent).count() > timeout_s_) {
      timed_out = true;
      return false;
    }
    return done ? true : stream_error.empty();
  };

  result.sent = Clock::now();
  httplib::Response response;
  httplib::Error http_error = httplib::Error::Success;
  const bool sent_ok = client_->send(req, response, http_error);
  if (status == 200) parser.finish();
  result.finished = Clock::now();

  if (timed_out) result.error = "timeout after " + std::to_string(timeout_s_) + " s";
  else if (too_big) result.error = "response larger than the body limit";
  else if (!stream_error.empty()) result.error = stream_error;
  else if (status != 0 && status != 200)
    result.error = "HTTP " + std::to_string(status) + ": " + clip(raw.empty() ? response.body : raw);
  else if (!sent_ok) result.error = "connection: " + httplib::to_string(http_error);
  else if (!done) result.error = "stream ended without data: [DONE]";
  result.ok = result.error.empty();
  if (!result.ok) {
    // A broken connection is not reused: the next request gets a fresh one.
    client_->stop();
  }
  return result;
}

std::optional<nlohmann::json> StreamClient::finish_json(int status, const std::string& body,
                                                        bool sent, const std::string& what,
                                                        std::string& error) {
  if (!sent) {
    error = what + ": no answer from " + target_.host + ":" + std::to_string(target_.port);
    return std::nullopt;
  }
  if (status != 200) {
    error = what + ": HTTP " + std::to_string(status) + ": " + clip(body);
    return std::nullopt;
  }
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) {
    error = what + ": answer is not JSON: " + clip(body);
    return std::nullopt;
  }
  return parsed;
}

std::optional<nlohmann::json> StreamClient::get_json(const std::string& path, std::string& error) {
  httplib::Headers headers;
  if (!api_key_.empty()) headers.emplace("Authorization", "Bearer " + api_key_);
  auto res = client_->Get(target_.base_path + path, headers);
  return finish_json(res ? res->status : 0, res ? res->body : std::string{}, static_cast<bool>(res),
                     "GET " + path, error);
}

std::optional<nlohmann::json> StreamClient::post_json(const std::string& path,
                                                      const nlohmann::json& body,
                                                      std::string& error) {
  httplib::Headers headers;
  if (!api_key_.empty()) headers.emplace("Authorization", "Bearer " + api_key_);
  auto res = client_->Post(target_.base_path + path, headers, body.dump(), "application/json");
  return finish_json(res ? res->status : 0, res ? res->body : std::string{}, static_cast<bool>(res),
                     "POST " + path, error);
}

}  // namespace nibble::serve_bench
