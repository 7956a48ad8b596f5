// serve_bench against a scripted OpenAI-style server on 127.0.0.1: known
// token delays must show up as TTFT/ITL, usage must be counted, and every
// kind of failure must be reported as an error instead of a number.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runner.h"
#include "setup.h"

using namespace nibble::serve_bench;
using namespace std::chrono_literals;

namespace {

enum class Mode { ok, no_done, error_event, short_output };

class FakeServer {
 public:
  Mode mode = Mode::ok;
  std::chrono::milliseconds first_delay{40};
  std::chrono::milliseconds token_delay{20};
  std::string api_key;
  std::atomic<int> streams{0};

  FakeServer() {
    server_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object":"list","data":[{"id":"fake-model","object":"model"}]})",
                      "application/json");
    });
    server_.Post("/tokenize", [](const httplib::Request& req, httplib::Response& res) {
      const auto body = nlohmann::json::parse(req.body);
      const std::string text = body.at("prompt");
      nlohmann::json tokens = nlohmann::json::array();
      // Two tokens per word, ids 100.. by word length, like a real BPE would vary.
      std::size_t start = 0;
      while (start < text.size()) {
        std::size_t end = text.find(' ', start);
        if (end == std::string::npos) end = text.size();
        tokens.push_back(100 + static_cast<int>(end - start));
        tokens.push_back(7);
        start = end + 1;
      }
      res.set_content(nlohmann::json{{"count", tokens.size()}, {"tokens", tokens}}.dump(),
                      "application/json");
    });
    auto stream = [this](bool chat) {
      return [this, chat](const httplib::Request& req, httplib::Response& res) {
        if (!api_key.empty() && req.get_header_value("Authorization") != "Bearer " + api_key) {
          res.status = 401;
          res.set_content(R"({"error":{"message":"bad key"}})", "application/json");
          return;
        }
        const auto body = nlohmann::json::parse(req.body);
        const int max_tokens = body.at("max_tokens");
        const int prompt_tokens =
            chat ? 3 : static_cast<int>(body.at("prompt").size());
        ++streams;
        res.set_chunked_content_provider(
            "text/event-stream", [=, this](size_t, httplib::DataSink& sink) {
              auto send = [&](const std::string& data) {
                const std::string event = "data: " + data + "\n\n";
                sink.write(event.data(), event.size());
              };
              if (chat) send(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
              const int produced = mode == Mode::short_output ? max_tokens - 1 : max_tokens;
              for (int i = 0; i < produced; ++i) {
                std::this_thread::sleep_for(i == 0 ? first_delay : token_delay);
                const std::string reason = i + 1 == produced ? R"("length")" : "null";
                if (chat)
                  send(R"({"choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":)" + reason + "}]}");
                else
                  send(R"({"choices":[{"index":0,"text":"tok","finish_reason":)" + reason + "}],\"usage\":null}");
                if (mode == Mode::error_event && i == 1) {
                  send(R"({"error":{"message":"engine exploded"}})");
                  sink.done();
                  return true;
                }
              }
              send(nlohmann::json{{"choices", nlohmann::json::array()},
                                  {"usage",
                                   {{"prompt_tokens", prompt_tokens},
                                    {"completion_tokens", produced},
                                    {"total_tokens", prompt_tokens + produced}}}}
                       .dump());
              if (mode != Mode::no_done) send("[DONE]");
              sink.done();
              return true;
            });
      };
    };
    server_.Post("/v1/completions", stream(false));
    server_.Post("/v1/chat/completions", stream(true));
    server_.set_tcp_nodelay(true);  // as real servers do for SSE
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(10ms);
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

Options options_for(const FakeServer& server) {
  Options o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port());
  o.target = parse_target(o.url);
  o.prompt_tokens = {4, 12};
  o.max_tokens = 5;
  o.requests_per_client = 2;
  o.request_timeout_s = 20;
  return o;
}

}  // namespace

TEST(EndToEnd, SetupFindsModelAndTokenPool) {
  FakeServer server;
  Options o = options_for(server);
  StreamClient client(o.target, "", 10);
  EXPECT_EQ(resolve_model(client, o), "fake-model");
  std::string mode;
  const PromptSource source = make_prompt_source(client, o, mode);
  EXPECT_FALSE(source.token_pool.empty());
  EXPECT_DOUBLE_EQ(source.tokens_per_word, 2.0);
  EXPECT_NE(mode.find("exact"), std::string::npos) << mode;
}

TEST(EndToEnd, TimingsAndTokenCountsOfAStreamingLevel) {
  FakeServer server;
  Options o = options_for(server);
  o.model = "fake-model";
  StreamClient setup(o.target, "", 10);
  std::string mode;
  const Workload workload(o, make_prompt_source(setup, o, mode));
  const LevelResult level = run_level(o, workload, 0, 4);

  EXPECT_EQ(server.streams.load(), 8);
  EXPECT_EQ(level.concurrency, 4);
  EXPECT_EQ(level.requests_ok, 8);
  EXPECT_EQ(level.errors, 0);
  EXPECT_EQ(level.short_outputs, 0);
  EXPECT_EQ(level.output_tokens, 8 * 5);
  EXPECT_GE(level.prompt_tokens, 8 * 4);
  EXPECT_LE(level.prompt_tokens, 8 * 12);
  // Two requests back to back of 40 + 4 x 20 ms each: at least 240 ms.
  EXPECT_GE(level.duration_s, 0.24);
  EXPECT_LT(level.duration_s, 15.0);
  EXPECT_NEAR(level.requests_per_s, 8 / level.duration_s, 1e-9);
  EXPECT_NEAR(level.output_tokens_per_s, 40 / level.duration_s, 1e-9);
  EXPECT_NEAR(level.total_tokens_per_s, (level.prompt_tokens + 40) / level.duration_s, 1e-9);
  EXPECT_EQ(level.ttft_ms.count, 8u);
  EXPECT_GE(level.ttft_ms.p50, 39.0);
  EXPECT_LT(level.ttft_ms.p50, 5000.0);
  EXPECT_EQ(level.itl_ms.count, 8u * 4);
  EXPECT_GE(level.itl_ms.p50, 18.0);
  EXPECT_LT(level.itl_ms.p50, 5000.0);
  EXPECT_GE(level.tpot_ms.p50, 18.0);
  EXPECT_GE(level.e2e_ms.p50, 115.0);
}

TEST(EndToEnd, ChatTtftWaitsForTheFirstContent) {
  FakeServer server;
  server.first_delay = 120ms;
  server.token_delay = 5ms;
  Options o = options_for(server);
  o.endpoint = Endpoint::chat;
  o.requests_per_client = 1;
  const Workload workload(o, {});
  const LevelResult level = run_level(o, workload, 0, 2);
  EXPECT_EQ(level.requests_ok, 2);
  EXPECT_EQ(level.output_tokens, 10);
  // The role-only chunk arrives at once; it must not count as the first token.
  EXPECT_GE(level.ttft_ms.p50, 119.0);
}

TEST(EndToEnd, BrokenStreamsAreErrorsNotNumbers) {
  FakeServer server;
  server.token_delay = 1ms;
  server.first_delay = 1ms;
  Options o = options_for(server);
  const Workload workload(o, {});

  server.mode = Mode::no_done;
  LevelResult level = run_level(o, workload, 0, 2);
  EXPECT_EQ(level.requests_ok, 0);
  EXPECT_EQ(level.errors, 4);
  ASSERT_EQ(level.error_counts.size(), 1u);
  EXPECT_NE(level.error_counts.begin()->first.find("[DONE]"), std::string::npos);

  server.mode = Mode::error_event;
  level = run_level(o, workload, 1, 2);
  EXPECT_EQ(level.errors, 4);
  EXPECT_NE(level.error_counts.begin()->first.find("engine exploded"), std::string::npos);

  server.mode = Mode::short_output;
  level = run_level(o, workload, 2, 1);
  EXPECT_EQ(level.errors, 0);
  EXPECT_EQ(level.short_outputs, 2);
}

TEST(EndToEnd, ApiKeyIsSentAndRefusalsAreCounted) {
  FakeServer server;
  server.api_key = "sk-test";
  server.first_delay = 1ms;
  server.token_delay = 1ms;
  Options o = options_for(server);
  const Workload workload(o, {});
  LevelResult level = run_level(o, workload, 0, 2);
  EXPECT_EQ(level.errors, 4);
  ASSERT_FALSE(level.error_counts.empty());
  EXPECT_EQ(level.error_counts.begin()->first.rfind("HTTP 401", 0), 0u) << level.error_counts.begin()->first;

  o.api_key = "sk-test";
  level = run_level(o, workload, 1, 2);
  EXPECT_EQ(level.errors, 0);
  EXPECT_EQ(level.requests_ok, 4);
}

TEST(EndToEnd, NothingListeningIsAConnectionError) {
  Options o;
  {
    FakeServer server;  // take a free port, then close it
    o = options_for(server);
  }
  o.request_timeout_s = 5;
  const Workload workload(o, {});
  const LevelResult level = run_level(o, workload, 0, 1);
  EXPECT_EQ(level.errors, 2);
  EXPECT_EQ(level.error_counts.begin()->first.rfind("connection", 0), 0u);
}

TEST(EndToEnd, DurationModeStopsStartingRequests) {
  FakeServer server;
  server.first_delay = 10ms;
  server.token_delay = 10ms;
  Options o = options_for(server);
  o.duration_s = 0.3;
  const Workload workload(o, {});
  const LevelResult level = run_level(o, workload, 0, 2);
  EXPECT_EQ(level.errors, 0);
  EXPECT_GE(level.requests_ok, 2);
  EXPECT_LT(level.duration_s, 5.0);
  // Each request takes >= 50 ms, so two clients fit at most ~14 in 0.35 s.
  EXPECT_LE(level.requests_ok, 16);
}

TEST(EndToEnd, KeepAliveRequestsAreNotHeldByDelayedAcks) {
  // With Nagle's algorithm on, a request on a reused connection waits ~40 ms
  // for the server's delayed ACK before its body leaves; TTFT would carry it.
  FakeServer server;
  server.first_delay = 0ms;
  server.token_delay = 0ms;
  Options o = options_for(server);
  o.requests_per_client = 12;
  const Workload workload(o, {});
  const LevelResult level = run_level(o, workload, 0, 1);
  EXPECT_EQ(level.requests_ok, 12);
  EXPECT_LT(level.ttft_ms.p50, 30.0);
}
