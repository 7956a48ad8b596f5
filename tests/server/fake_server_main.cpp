// nibble_fake_server: the real HttpServer over a FakeEngine and the byte-level
// fake tokenizer, for HTTP-level tests that need no model. Prints
// "LISTENING <port>" once bound; SIGTERM drains as `nibble serve` does.
#include <cstdio>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "../api/fake_codec.h"
#include "fake_engine.h"
#include "nibble/core/error.h"
#include "nibble/server/http_server.h"
#include "nibble/server/shutdown.h"

int main(int argc, char** argv) {
  using namespace nibble;
  server::block_shutdown_signals();
  CLI::App app{"nibble fake server (tests only)"};
  server::ServerConfig config;
  fakes::FakeEngineConfig engine_config;
  int step_ms = 2, load_delay_ms = 0, drain_ms = 5000;
  std::string log_level = "info";
  config.port = 0;
  config.served_model_name = "fake-model";
  app.add_option("--host", config.host);
  app.add_option("--port", config.port);
  app.add_option("--served-model-name", config.served_model_name);
  app.add_option("--api-key", config.api_key);
  app.add_option("--allowed-origins", config.allowed_origins)->delimiter(',');
  app.add_option("--max-body-size", config.max_body_size);
  app.add_option("--max-connections", config.max_connections);
  app.add_option("--max-waiting", engine_config.max_waiting);
  app.add_option("--max-num-seqs", engine_config.max_num_seqs);
  app.add_option("--max-model-len", engine_config.max_model_len);
  app.add_option("--kv-blocks", engine_config.kv_blocks);
  app.add_option("--step-ms", step_ms);
  app.add_option("--load-delay-ms", load_delay_ms);
  app.add_option("--drain-timeout-ms", drain_ms);
  app.add_option("--log-level", log_level);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  engine_config.step = std::chrono::milliseconds(step_ms);

  server::HttpServer http(config);
  int port = http.bind();
  std::printf("LISTENING %d\n", port);
  std::fflush(stdout);
  std::thread serving([&] { http.run(); });

  std::this_thread::sleep_for(std::chrono::milliseconds(load_delay_ms));  // /health answers 503 meanwhile
  fakes::ByteTokenizer tokenizer;
  fakes::ByteCodec codec;
  fakes::FakeEngine engine(engine_config);
  server::ServingModel model;
  model.architecture = "FakeForCausalLM";
  model.quantization = "none";
  model.root = "/fake";
  model.max_model_len = engine_config.max_model_len;
  model.vocab_size = tokenizer.vocab_size();
  model.tokenizer = &tokenizer;
  model.codec = &codec;
  model.engine = &engine;
  model.special_tokens = tokenizer.special_tokens_map();
  model.render_chat = [](const ChatRenderInput& input) {
    std::string text = "<s>";
    for (const auto& m : input.messages) {
      if (m["role"] == "user" && m["content"] == "raise") throw Error("template raised: no 'raise' allowed");
      text += m["role"].get<std::string>() + ": " + m["content"].get<std::string>() + "\n";
    }
    if (input.add_generation_prompt) text += "assistant:";
    return text;
  };
  http.set_model(model);
  spdlog::info("ready");

  server::wait_for_shutdown_signal([] { return true; });
  server::drain_and_stop(http, [&] { engine.shutdown(std::chrono::milliseconds(drain_ms)); });
  serving.join();
  spdlog::info("stopped");
  return 0;
}
