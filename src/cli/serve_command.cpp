// `nibble serve`: wiring only. Listens first (/health answers 503 while the
// model loads), loads the model, tokenizer, chat template and engine, serves
// until SIGTERM/SIGINT, then drains.
#include <algorithm>
#include <cstdio>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "commands.h"
#include "model_source.h"
#include "nibble/api/text_decoder.h"
#include "nibble/chat/chat_template.h"
#include "nibble/core/error.h"
#include "nibble/core/logging.h"
#include "nibble/core/memory_size.h"
#include "nibble/engine/backend_factory.h"
#include "nibble/scheduler/engine_loop.h"
#include "nibble/server/http_server.h"
#include "nibble/server/service_notify.h"
#include "nibble/server/shutdown.h"
#include "nibble/tokenizer/tokenizer.h"

namespace nibble::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string load_format = "auto";
  std::string device = "auto";
  std::string chat_template;
  int max_model_len = 0;
  int max_num_seqs = 256;
  int max_num_batched_tokens = 2048;
  int max_waiting = 1024;
  int kv_cache_tokens = 0;
  int threads = 0;
  double gpu_memory_utilization = 0.9;
  std::string max_gpu_memory;
  bool enable_prefix_caching = true;
  double drain_timeout_s = 30.0;
  int read_timeout_s = 60;
  int write_timeout_s = 60;
  int keep_alive_timeout_s = 5;
  std::string log_level = "info";
  server::ServerConfig http;
};

std::string describe_quantization(const QuantConfig& q) {
  if (!q.quantized) return "none (dense)";
  return fmt::format("GPTQ {}-bit, group {}{}{}, {}", q.bits, q.group_size, q.desc_act ? ", act-order" : "",
                     q.sym ? ", sym" : ", asym", q.format == QuantConfig::Format::GptqV2 ? "gptq_v2" : "gptq");
}

void add_options(CLI::App& cmd, ServeOptions& o) {
  cmd.add_option("--model", o.model,
                 "Model folder (config.json, safetensors, tokenizer.json); with --load-format dummy a config.json "
                 "file or a folder holding one; required")
      ->envname("NIBBLE_MODEL");
  cmd.add_option("--load-format", o.load_format,
                 "auto (read the checkpoint) or dummy (random GPTQ weights at the shapes of --model's config.json, "
                 "for benchmarks; nothing downloaded)")
      ->envname("NIBBLE_LOAD_FORMAT")
      ->check(CLI::IsMember(kLoadFormats))
      ->capture_default_str();
  cmd.add_option("--host", o.http.host, "Address to listen on")->envname("NIBBLE_HOST")->capture_default_str();
  cmd.add_option("--port", o.http.port, "Port to listen on (0 = any free port)")
      ->envname("NIBBLE_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd.add_option("--served-model-name", o.http.served_model_name, "Model id in the API (default: the folder's name)")
      ->envname("NIBBLE_SERVED_MODEL_NAME");
  cmd.add_option("--api-key", o.http.api_key, "Require this key (Authorization: Bearer or x-api-key)")
      ->envname("NIBBLE_API_KEY");
  cmd.add_option("--chat-template", o.chat_template, "Chat template file (or inline template) overriding the model's")
      ->envname("NIBBLE_CHAT_TEMPLATE");
  cmd.add_option("--max-model-len", o.max_model_len, "Context length (default: the model's)")
      ->envname("NIBBLE_MAX_MODEL_LEN")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--max-num-seqs", o.max_num_seqs, "Most requests running at once")
      ->envname("NIBBLE_MAX_NUM_SEQS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--max-num-batched-tokens", o.max_num_batched_tokens, "Token budget of one engine step")
      ->envname("NIBBLE_MAX_NUM_BATCHED_TOKENS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--max-waiting", o.max_waiting, "Waiting requests beyond which new ones get HTTP 429")
      ->envname("NIBBLE_MAX_WAITING")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--kv-cache-tokens", o.kv_cache_tokens, "KV cache size in tokens (CPU pool; 0 = default)")
      ->envname("NIBBLE_KV_CACHE_TOKENS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--device", o.device, "auto (CUDA when built with it and a GPU is present), cpu or cuda")
      ->envname("NIBBLE_DEVICE")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd.add_option("--gpu-memory-utilization", o.gpu_memory_utilization, "Fraction of GPU memory to use (cuda)")
      ->envname("NIBBLE_GPU_MEMORY_UTILIZATION")
      ->check(CLI::Range(0.05, 1.0))
      ->capture_default_str();
  cmd.add_option("--max-gpu-memory", o.max_gpu_memory,
                 "Plan GPU memory as for a card of this size, e.g. 24GiB (cuda; overrides --gpu-memory-utilization)")
      ->envname("NIBBLE_MAX_GPU_MEMORY");
  cmd.add_option("--threads", o.threads, "CPU worker threads (0 = all cores)")
      ->envname("NIBBLE_THREADS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--allowed-origins", o.http.allowed_origins, "CORS origins (comma-separated; * for any)")
      ->envname("NIBBLE_ALLOWED_ORIGINS")
      ->delimiter(',');
  cmd.add_option("--max-body-size", o.http.max_body_size, "Largest request body in bytes (larger: HTTP 413)")
      ->envname("NIBBLE_MAX_BODY_SIZE")
      ->capture_default_str();
  cmd.add_option("--max-connections", o.http.max_connections, "HTTP worker threads (each open stream holds one)")
      ->envname("NIBBLE_MAX_CONNECTIONS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--drain-timeout", o.drain_timeout_s, "Seconds in-flight requests may take to finish on shutdown")
      ->envname("NIBBLE_DRAIN_TIMEOUT")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--read-timeout", o.read_timeout_s, "Seconds to wait for a request's bytes")
      ->envname("NIBBLE_READ_TIMEOUT")
      ->capture_default_str();
  cmd.add_option("--write-timeout", o.write_timeout_s, "Seconds a response write may block")
      ->envname("NIBBLE_WRITE_TIMEOUT")
      ->capture_default_str();
  cmd.add_option("--keep-alive-timeout", o.keep_alive_timeout_s, "Seconds an idle keep-alive connection stays open")
      ->envname("NIBBLE_KEEP_ALIVE_TIMEOUT")
      ->capture_default_str();
  cmd.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical or off")
      ->envname("NIBBLE_LOG_LEVEL")
      ->capture_default_str();
  cmd.add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", o.enable_prefix_caching,
               "Reuse the KV blocks of shared prompt prefixes")
      ->envname("NIBBLE_ENABLE_PREFIX_CACHING")
      ->default_str("true");
}

// Everything a served model consists of, kept alive together.
struct LoadedStack {
  EngineModel model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  std::unique_ptr<EngineLoop> engine;
  std::unique_ptr<api::TextCodec> codec;
  server::ServingModel serving;
};

void load_stack(const ServeOptions& o, const ModelSource& source, LoadedStack& s) {
  // Dummy weights take a while to generate: check the tokenizer first.
  if (source.dummy) s.tokenizer = load_model_tokenizer(source);

  BackendOptions backend;
  backend.device = o.device;
  backend.threads = o.threads;
  backend.kv_cache_tokens = o.kv_cache_tokens;
  backend.gpu_memory_utilization = o.gpu_memory_utilization;
  if (!o.max_gpu_memory.empty()) backend.max_gpu_memory = parse_memory_size(o.max_gpu_memory);
  backend.max_num_seqs = o.max_num_seqs;
  backend.max_num_batched_tokens = o.max_num_batched_tokens;
  s.model = load_engine_model(source, backend);
  if (!s.tokenizer) s.tokenizer = load_model_tokenizer(source);

  ChatSource chat = load_model_chat_template(source, *s.tokenizer);
  std::string template_source = o.chat_template.empty() ? chat.config.source
                                                        : load_chat_template_override(o.chat_template);
  if (o.chat_template.empty() && chat.config.is_fallback)
    spdlog::warn("{} has no chat template: using a generic ChatML template", source.dir.string());
  if (source.dummy) spdlog::info("chat template: {}", o.chat_template.empty() ? chat.origin : "--chat-template");
  s.chat_template = ChatTemplate::parse(template_source);

  SchedulerConfig scheduler;
  scheduler.max_num_seqs = o.max_num_seqs;
  scheduler.max_num_batched_tokens = o.max_num_batched_tokens;
  scheduler.max_model_len = o.max_model_len;
  scheduler.max_waiting = o.max_waiting;
  scheduler.enable_prefix_caching = o.enable_prefix_caching;
  for (int id : s.model.generation.eos_token_ids) scheduler.eos_token_ids.push_back(id);
  for (int32_t id : s.tokenizer->eos_token_ids())
    if (std::find(scheduler.eos_token_ids.begin(), scheduler.eos_token_ids.end(), id) == scheduler.eos_token_ids.end())
      scheduler.eos_token_ids.push_back(id);
  s.engine = EngineLoop::start(*s.model.backend, scheduler);
  s.codec = api::make_tokenizer_codec(*s.tokenizer);

  const ModelConfig& config = s.model.config;
  auto& m = s.serving;
  m.architecture = config.architecture_name;
  m.quantization = describe_quantization(config.quant) + (source.dummy ? " (dummy weights)" : "");
  m.root = std::filesystem::absolute(source.path).string();
  m.max_model_len = s.engine->max_model_len();
  m.vocab_size = std::max(config.vocab_size, s.tokenizer->vocab_size());
  m.tokenizer = s.tokenizer.get();
  m.codec = s.codec.get();
  m.engine = s.engine.get();
  nlohmann::json special = chat.config.special_tokens;
  m.special_tokens = special;
  const ChatTemplate* chat_template = s.chat_template.get();
  m.render_chat = [chat_template](const ChatRenderInput& input) { return chat_template->render(input); };
}

// Fills the options not given on the command line or in the environment from
// a TOML file (CLI11's parser; keys are option names, '-' or '_', top level or
// under [serve]). Precedence: command line > environment > file > default.
void apply_config_file(CLI::App& cmd, const std::string& path) {
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw_error(fmt::format("--config {}: {}", path, e.what()));
  }
  for (const auto& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    NIBBLE_CHECK(item.parents.empty() || (item.parents.size() == 1 && item.parents[0] == "serve"),
                 fmt::format("--config {}: unknown section in '{}'", path, item.fullname()));
    std::string name = item.name;
    std::replace(name.begin(), name.end(), '_', '-');
    CLI::Option* option = cmd.get_option_no_throw("--" + name);
    NIBBLE_CHECK(option != nullptr && name != "config",
                 fmt::format("--config {}: unknown option '{}'", path, item.name));
    if (option->count() > 0) continue;
    try {
      option->add_result(item.inputs);
      option->run_callback();
    } catch (const CLI::Error& e) {
      throw_error(fmt::format("--config {}: '{}': {}", path, item.name, e.what()));
    }
  }
}

void serve(ServeOptions o) {
  server::block_shutdown_signals();
  setup_logging(o.log_level);
  const ModelSource source = resolve_model_source(o.model, o.load_format);
  if (o.http.served_model_name.empty()) o.http.served_model_name = source.name;
  o.http.read_timeout = std::chrono::seconds(o.read_timeout_s);
  o.http.write_timeout = std::chrono::seconds(o.write_timeout_s);
  o.http.keep_alive_timeout = std::chrono::seconds(o.keep_alive_timeout_s);

  server::HttpServer http(o.http);
  int port = http.bind();
  std::atomic<bool> serving{true};
  std::thread http_thread([&] {
    http.run();
    serving = false;
  });
  spdlog::info("listening on http://{}:{} (loading {}; /health is 503 until ready)", o.http.host, port, o.model);

  LoadedStack stack;
  try {
    load_stack(o, source, stack);
  } catch (...) {
    // stop() does nothing until run() listens, and a load can fail before it
    // does: repeat it until run() has returned.
    while (serving.load()) {
      http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    http_thread.join();
    throw;
  }
  const ModelConfig& config = stack.model.config;
  const Backend& backend = *stack.model.backend;
  KvCacheShape kv = backend.kv_cache_shape();
  http.set_model(stack.serving);
  spdlog::info("model       {} ({})", stack.model.weights, o.http.served_model_name);
  spdlog::info("arch        {}: {} layers, hidden {}, {} heads / {} kv heads, vocab {}", config.architecture_name,
               config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
               config.vocab_size);
  spdlog::info("quant       {}", stack.serving.quantization);
  spdlog::info("device      {}; KV cache {} tokens ({} blocks of {}); max_model_len {}", backend.name(),
               kv.num_blocks * kv.block_size, kv.num_blocks, kv.block_size, stack.serving.max_model_len);
  spdlog::info("ready: http://{}:{}/v1 (max {} running, {} waiting, prefix caching {})", o.http.host, port,
               o.max_num_seqs, o.max_waiting, o.enable_prefix_caching ? "on" : "off");

  server::notify_ready(fmt::format("serving {} on {}:{}", o.http.served_model_name, o.http.host, port));
  server::wait_for_shutdown_signal([&] { return serving.load(); });
  server::notify_stopping();
  auto drain = std::chrono::milliseconds(static_cast<long long>(o.drain_timeout_s * 1000));
  server::drain_and_stop(http, [&] { stack.engine->shutdown(drain); });
  http_thread.join();
  spdlog::info("stopped");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto options = std::make_shared<ServeOptions>();
  auto config_file = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("--config", *config_file, "TOML file setting any of these options (e.g. max-num-seqs = 64)")
      ->envname("NIBBLE_CONFIG");
  auto check_config = std::make_shared<bool>(false);
  cmd->add_flag("--check-config", *check_config,
                "Check the options (command line, environment, --config file), print them as TOML and exit");
  add_options(*cmd, *options);
  cmd->callback([cmd, options, config_file, check_config] {
    if (!config_file->empty()) apply_config_file(*cmd, *config_file);
    if (*check_config) {
      std::fputs(cmd->config_to_str(/*default_also=*/true, /*write_description=*/true).c_str(), stdout);
      return;
    }
    serve(*options);
  });
}

}  // namespace nibble::cli
